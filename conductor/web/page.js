// The browser view's one script: keeps a run's page live from its server-sent events and
// sends a person's actions. Everything shown is set as text (textContent), never as markup.
"use strict";
(function () {
  const token = document.querySelector('meta[name="conductor-token"]').content;
  const root = document.querySelector('meta[name="conductor-base"]').content;

  function notice(text, bad) {
    const box = document.getElementById("notice");
    box.textContent = text;
    box.className = bad ? "notice bad" : "notice";
    box.hidden = false;
  }

  async function act(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Conductor-Token": token },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = { error: response.statusText }; }
    if (!response.ok) { notice(answer.error || ("refused: " + response.status), true); return null; }
    notice(answer.message || "done", false);
    return answer;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function link(href, text) {
    const a = el("a", text);
    a.href = href;
    return a;
  }

  function runPage(section) {
    const run = section.dataset.run;
    const base = root + "/runs/" + encodeURIComponent(run);
    const live = document.getElementById("live");

    function drawState(s) {
      document.getElementById("goal").textContent = s.goal;
      const state = document.getElementById("state");
      state.textContent = s.state;
      document.getElementById("totals").textContent =
        s.workstreams + " workstreams, " + s.merged + " merged · " + s.turns + " turns · " + s.cost;
      document.getElementById("stop").hidden = !s.can_stop;
      document.getElementById("resume").hidden = !s.can_resume;
      const body = document.querySelector("#sessions tbody");
      const rows = [];
      for (const row of s.sessions) {
        const tr = el("tr", null, row.waiting ? "waiting" : "");
        tr.dataset.session = row.name;
        const name = el("td", null, "name");
        name.appendChild(link(base + "/sessions/" + encodeURIComponent(row.name), row.name));
        const host = el("td", row.host, "host");
        host.hidden = !s.hosts;
        const doing = el("td", null, "doing");
        if (row.human_review) doing.appendChild(link(base + "/reviews/" + row.human_review, row.doing));
        else doing.textContent = row.doing;
        tr.append(name, host, el("td", row.status, "status " + row.status),
          el("td", row.turns || "", "num turns"), el("td", row.cost, "num cost"),
          el("td", row.last, "last"), doing);
        rows.push(tr);
      }
      body.replaceChildren(...rows);
      document.querySelectorAll("#sessions th.host").forEach((th) => { th.hidden = !s.hosts; });
      document.getElementById("merge-queue").replaceChildren(...s.merge_queue.map((n) => el("li", n)));
      const waiting = s.waiting.map((w) => {
        const li = el("li");
        li.dataset.session = w.name;
        if (w.review) {
          li.append(link(base + "/reviews/" + w.review, "review #" + w.review), " of " + w.name);
        } else {
          li.textContent = w.name + ": " + w.doing;
        }
        return li;
      });
      document.getElementById("waiting").replaceChildren(...waiting);
      document.getElementById("reviews").replaceChildren(...s.reviews.map((r) => {
        const li = el("li");
        li.dataset.review = r.id;
        li.append(link(base + "/reviews/" + r.id, "#" + r.id), " of " + r.requester + " · ",
          el("span", r.status, "status " + r.status),
          (r.decided_by ? " by " + r.decided_by : "") + (r.comment ? ": " + r.comment : ""));
        return li;
      }));
      document.getElementById("waiting-box").hidden = waiting.length === 0;
    }

    function addLines(lines) {
      const list = document.getElementById("lines");
      for (const line of lines) {
        if (list.querySelector('li[data-id="' + line.id + '"]')) continue;
        const li = el("li", line.text);
        li.dataset.id = line.id;
        list.appendChild(li);
      }
      while (list.children.length > 500) list.removeChild(list.firstChild);
    }

    const stream = new EventSource(base + "/stream?after=" + encodeURIComponent(section.dataset.after));
    stream.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
    stream.addEventListener("error", () => { live.textContent = "reconnecting"; live.className = "live"; });
    stream.addEventListener("state", (e) => drawState(JSON.parse(e.data)));
    stream.addEventListener("lines", (e) => addLines(JSON.parse(e.data)));

    document.getElementById("stop").addEventListener("click", () => {
      if (confirm("Stop run " + run + "? Its sessions are interrupted; it can be resumed.")) act(base + "/stop");
    });
    document.getElementById("resume").addEventListener("click", () => act(base + "/resume"));
  }

  function reviewPage(form) {
    const url = root + "/runs/" + encodeURIComponent(form.dataset.run) + "/reviews/" + form.dataset.review + "/";
    for (const verdict of ["approve", "reject"]) {
      document.getElementById(verdict).addEventListener("click", async () => {
        const comment = document.getElementById("comment").value;
        const answer = await act(url + verdict, { comment: comment });
        if (answer) {
          document.getElementById("review-status").textContent = answer.status;
          form.hidden = true;
        }
      });
    }
  }

  const section = document.getElementById("run");
  if (section) runPage(section);
  const form = document.getElementById("decide");
  if (form) reviewPage(form);
})();
