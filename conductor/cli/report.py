"""`conductor report RUN`: a run as one self-contained HTML file."""

from __future__ import annotations
