"""`conductor report RUN`: one self-contained HTML file of a run, with an SVG timeline."""
