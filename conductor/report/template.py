"""The report's page: one HTML document with its stylesheet inline, and nothing else.

A Python string rather than a file beside the code, so it travels with the module in every
install. Rendered by Jinja2 with autoescape on (`page.py`): every value is escaped unless it
is the timeline's SVG, which `svg.py` escapes itself. No script, no font, no image, no link:
the file opens offline and reads the same anywhere.
"""

from __future__ import annotations

STYLE = """
:root { --ink: #1d232b; --muted: #5b6673; --line: #d9dee5; --bg: #ffffff; --soft: #f4f6f9;
  --working: #3b82c4; --waiting: #d5dbe3; --review: #c98a1b; --merge: #7a58c1;
  --good: #2e8b57; --bad: #c0392b; --warn: #e07b1a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: var(--bg); margin: 0 auto; padding: 24px 32px 48px; max-width: 1280px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.goal { font-size: 16px; margin: 0 0 16px; white-space: pre-wrap; }
.muted { color: var(--muted); }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.summary dt { color: var(--muted); }
dl.summary dd { margin: 0; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: var(--soft); padding: 10px 12px; overflow-x: auto; white-space: pre-wrap;
  word-break: break-word; border-radius: 4px; margin: 6px 0 12px; }
.state-merged, .verdict-approved { color: var(--good); font-weight: 600; }
.state-failed, .state-stopped, .verdict-rejected, .outcome-check_failed { color: var(--bad);
  font-weight: 600; }
.outcome-conflict, .outcome-foreign_paths { color: var(--warn); font-weight: 600; }
.timeline-box { border: 1px solid var(--line); border-radius: 4px; padding: 8px; overflow-x: auto; }
#timeline { display: block; min-width: 720px; }
#timeline text { font: 11px system-ui, sans-serif; fill: var(--ink); }
#timeline .tick-label, #timeline .axis-name { fill: var(--muted); font-size: 10px; }
#timeline .tick { stroke: var(--line); stroke-width: 0.6; }
#timeline .axis-line, #timeline .lane-line { stroke: var(--line); stroke-width: 1; }
#timeline .phase.working { fill: var(--working); }
#timeline .phase.waiting { fill: var(--waiting); }
#timeline .phase.review { fill: var(--review); }
#timeline .phase.merge { fill: var(--merge); }
#timeline .phase:hover { stroke: var(--ink); stroke-width: 1; }
#timeline .message line { stroke: #2b2f36; stroke-width: 1.3; fill: none; }
#timeline .message.review line { stroke: #8a6d2b; }
#timeline .message.unread line { stroke-dasharray: 4 3; }
#timeline .message:hover line { stroke-width: 2.6; }
#timeline .arrowhead { fill: #2b2f36; }
#timeline .run-state line { stroke: #2b2f36; stroke-width: 1; stroke-dasharray: 2 3; }
#timeline .run-state:hover line { stroke-width: 2.5; }
#timeline .mark { stroke-width: 2; }
#timeline .mark.merged { fill: var(--good); stroke: #fff; }
#timeline .mark.rejected, #timeline .mark.refused { fill: none; stroke: var(--bad); }
#timeline .mark.died { fill: none; stroke: #000; }
#timeline .mark.check-failed { fill: var(--bad); stroke: #fff; stroke-width: 1; }
#timeline .mark.conflict { fill: var(--warn); stroke: #fff; stroke-width: 1; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 8px 0 0; color: var(--muted);
  font-size: 12.5px; }
.swatch { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
  vertical-align: baseline; border-radius: 2px; }
.swatch.working { background: var(--working); } .swatch.waiting { background: var(--waiting); }
.swatch.review { background: var(--review); } .swatch.merge { background: var(--merge); }
.sym-merged { color: var(--good); } .sym-rejected { color: var(--bad); }
.sym-check-failed { color: var(--bad); } .sym-conflict { color: var(--warn); }
.round { margin: 4px 0 10px; }
.not-shown { font-size: 12.5px; margin: 6px 0; }
.comment { white-space: pre-wrap; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>conductor report: {{ r.run.id }}</title>
<style>{{ style }}</style>
</head>
<body>
<header>
<h1>conductor run {{ r.run.id }}</h1>
<p class="goal">{{ r.run.goal }}</p>
</header>

<section id="summary">
<h2>Summary</h2>
<dl class="summary">
<dt>run</dt><dd><code>{{ r.run.id }}</code></dd>
<dt>state</dt><dd class="state-{{ r.run.state.value }}">{{ r.state }}</dd>
<dt>started</dt><dd>{{ r.started_at|moment }}</dd>
<dt>ended</dt><dd>{% if r.ended_at %}{{ r.ended_at|moment }}{% else %}not yet{% endif %}</dd>
<dt>duration</dt><dd>{{ length }}{% if not r.ended_at %} so far{% endif %}</dd>
<dt>workstreams</dt><dd>{{ r.workstreams|length }}: {{ merged }} merged, {{ failed }} failed
{%- if others %}, {{ others }} not merged{% endif %}</dd>
<dt>sessions</dt><dd>{{ r.sessions|length }} ({{ r.timeline.lanes|length }} on the timeline)</dd>
<dt>turns</dt><dd>{{ r.total.turns }}</dd>
<dt>cost</dt><dd>{{ r.total.cost_usd|money }}</dd>
<dt>reviews</dt><dd>{{ reviews }} ({{ rejected }} rejected)</dd>
<dt>merge attempts</dt><dd>{{ r.gate|length }} ({{ checks_failed }} with a failed check)</dd>
<dt>messages</dt><dd>{{ messages|length + r.timeline.messages_not_shown }} between sessions,
besides reviews{% if r.timeline.messages_not_shown %} (the last {{ messages|length }} shown)
{%- endif %}</dd>
<dt>events</dt><dd>{{ r.events }}</dd>
{%- if r.run.base_ref %}
<dt>base</dt><dd><code>{{ r.run.base_ref }}</code>{% if r.run.base_commit %} at
<code>{{ r.run.base_commit[:12] }}</code>{% endif %}</dd>
{%- endif %}
</dl>
</section>

<section id="timeline-section">
<h2>Timeline</h2>
<div class="timeline-box">
{{ svg }}
</div>
<div class="legend">
<span><span class="swatch working"></span>working (a turn)</span>
<span><span class="swatch waiting"></span>waiting</span>
<span><span class="swatch review"></span>in review</span>
<span><span class="swatch merge"></span>in the merge gate</span>
<span>&rarr; message (dashed: never read)</span>
<span>&#8942; the run's state changed</span>
<span class="sym-merged">&#9679; merged</span>
<span class="sym-rejected">&#10005; review rejected</span>
<span class="sym-check-failed">&#9660; check failed</span>
<span class="sym-conflict">&#9670; conflict</span>
<span class="muted">hover for details</span>
</div>
{% if r.timeline.messages_not_shown or r.timeline.reviews_not_shown
   or r.timeline.marks_not_shown or r.timeline.phases_merged %}
<ul class="not-shown muted">
{%- if r.timeline.messages_not_shown %}
<li>{{ r.timeline.messages_not_shown }} more messages not shown: <code>conductor logs
{{ r.run.id }}</code> has them (the last {{ messages|length }} are drawn).</li>
{%- endif %}
{%- if r.timeline.reviews_not_shown %}
<li>{{ r.timeline.reviews_not_shown }} more review messages not drawn (the reviews are listed
below).</li>
{%- endif %}
{%- if r.timeline.marks_not_shown %}
<li>{{ r.timeline.marks_not_shown }} earlier marks not drawn (the merge gate's outcomes are
listed below).</li>
{%- endif %}
{%- if r.timeline.phases_merged %}
<li>{{ r.timeline.phases_merged }} phases too short to draw apart are drawn inside their
neighbours (hover one to see how many it stands for).</li>
{%- endif %}
</ul>
{% endif %}
</section>

<section id="workstreams">
<h2>Workstreams</h2>
{% if r.workstreams %}
<table>
<tr><th>workstream</th><th>name</th><th>outcome</th><th class="num">review rounds</th>
<th class="num">merge attempts</th><th>note</th></tr>
{% for w in r.workstreams %}
<tr><td><code>{{ w.name }}</code></td><td>{{ w.title }}</td>
<td class="state-{{ w.outcome }}">{{ w.outcome }}</td><td class="num">{{ w.review_rounds }}</td>
<td class="num">{{ w.merge_attempts }}</td><td>{{ w.note }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">No workstreams.</p>{% endif %}
</section>

<section id="costs">
<h2>Cost</h2>
<h3>By role</h3>
<table>
<tr><th>role</th><th class="num">turns</th><th class="num">cost</th></tr>
{% for role, spend in r.roles.items() %}
<tr><td>{{ role }}</td><td class="num">{{ spend.turns }}</td>
<td class="num">{{ spend.cost_usd|money }}</td></tr>
{% endfor %}
<tr><th>total</th><th class="num">{{ r.total.turns }}</th>
<th class="num">{{ r.total.cost_usd|money }}</th></tr>
</table>
<h3>By session</h3>
<table>
<tr><th>session</th><th>role</th><th>status</th><th class="num">turns</th>
<th class="num">cost</th><th>note</th></tr>
{% for s in sessions %}
<tr><td><code>{{ s.name }}</code></td><td>{{ s.role }}</td><td class="state-{{ s.status }}">
{{- s.status }}</td><td class="num">{{ s.turns }}</td><td class="num">{{ s.cost_usd|money }}</td>
<td>{{ s.note }}</td></tr>
{% endfor %}
</table>
</section>

<section id="reviews">
<h2>Reviews</h2>
{% for author, rounds in listed_rounds.items() %}
<h3><code>{{ author }}</code>{% if titles.get(author) %} {{ titles[author] }}{% endif %}</h3>
{% if rounds_not_shown.get(author) %}
<p class="not-shown">{{ rounds_not_shown[author] }} earlier review rounds not shown:
<code>conductor review list --run {{ r.run.id }} -s {{ author }}</code> has them. The last
{{ rounds|length }}:</p>
{% endif %}
<ol>
{% for review in rounds %}
<li class="round" data-review="{{ review.id }}">review #{{ review.id }} of
<code>{{ review.commit[:12] }}</code> by {{ review.reviewer or "the review policy" }}:
{%- set verdict = r.timeline.verdicts.get(review.id, review.status.value) %}
<span class="verdict-{{ verdict }}">{{ verdict }}</span>
{%- if review.superseded_by %}, superseded by #{{ review.superseded_by }}{% endif %}
{%- if review.decided_by and review.decided_by != review.reviewer %} (decided by
{{ review.decided_by }}){% endif %}
<span class="muted">asked {{ review.created_at|clock }}
{%- if review.decided_at %}, decided {{ review.decided_at|clock }} after
{{ (review.decided_at - review.created_at)|duration }}{% endif %}</span>
{% if review.note %}<div>asked: <span class="comment">{{ review.note }}</span></div>{% endif %}
{% if review.comment %}<div>said: <span class="comment">{{ review.comment }}</span></div>{% endif %}
</li>
{% endfor %}
</ol>
{% else %}<p class="muted">No reviews.</p>
{% endfor %}
</section>

<section id="merges">
<h2>Merge gate</h2>
{% if gate_not_shown %}
<p class="not-shown">{{ gate_not_shown }} earlier merge attempts not shown:
<code>conductor logs {{ r.run.id }}</code> has them. The last {{ gate|length }}:</p>
{% endif %}
{% if gate %}
<table>
<tr><th>time</th><th>session</th><th>commit</th><th>outcome</th><th>detail</th></tr>
{% for o in gate %}
<tr><td>{{ o.at|clock }}</td><td><code>{{ o.session }}</code></td>
<td><code>{{ o.commit[:12] }}</code></td>
<td class="outcome-{{ o.outcome }}">{{ o.outcome.replace("_", " ") }}</td>
<td>{% if o.conflicts %}conflicts in {% for p in o.conflicts %}<code>{{ p }}</code>
{%- if not loop.last %}, {% endif %}{% endfor %}{% endif %}
{%- if o.foreign %} changes paths others own: {% for p, owner in o.foreign.items() %}
<code>{{ p }}</code> ({{ owner }}){% if not loop.last %}, {% endif %}{% endfor %}{% endif %}
{%- if o.check %} check <code>{{ o.check }}</code>{% endif %}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">Nothing reached the merge gate.</p>{% endif %}
{% if failed_checks %}
<h3>Failed checks</h3>
{% if checks_failed > failed_checks|length %}
<p class="not-shown">{{ checks_failed - failed_checks|length }} earlier failed checks not shown
(the last {{ failed_checks|length }} are).</p>
{% endif %}
{% for o in failed_checks %}
<div class="check-failure">
<p><code>{{ o.session }}</code> at {{ o.at|clock }}, commit <code>{{ o.commit[:12] }}</code>:
<code>{{ o.check }}</code></p>
<pre>{{ o.output or "(no output kept)" }}</pre>
</div>
{% endfor %}
{% endif %}
</section>

<section id="messages">
<h2>Messages</h2>
{% if r.timeline.messages_not_shown %}
<p class="not-shown">{{ r.timeline.messages_not_shown }} more messages not shown:
<code>conductor logs {{ r.run.id }}</code> has them. The last {{ messages|length }}:</p>
{% endif %}
{% if messages %}
<table>
<tr><th>sent</th><th>from</th><th>to</th><th>read</th><th>message</th></tr>
{% for m in messages %}
<tr><td>{{ m.sent_at|clock }}</td><td><code>{{ m.sender }}</code></td>
<td><code>{{ m.recipient }}</code></td>
<td>{% if m.read_at %}{{ m.read_at|clock }}{% else %}never{% endif %}</td>
<td>{{ m.text }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">No messages between sessions, besides reviews.</p>{% endif %}
</section>

<footer>Written by conductor {{ version }} at {{ written|moment }} from {{ r.events }} events.
Times are this machine's local time.</footer>
</body>
</html>
"""
