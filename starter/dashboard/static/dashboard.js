// incidentflow dashboard: live countdowns and short-polling refresh, no build step.
// [data-deadline] counts down to an ISO instant, [data-since] counts up from one, and a
// [data-refresh] region reloads its HTML every data-interval seconds unless the user is
// typing in it. The server's clock (body[data-now]) wins over the browser's.
(() => {
  "use strict";
  const skew = Number(document.body.dataset.now || Date.now()) - Date.now();
  const now = () => Date.now() + skew;

  function short(ms) {
    let s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400); s %= 86400;
    const h = Math.floor(s / 3600); s %= 3600;
    const m = Math.floor(s / 60); s %= 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  }

  function tick() {
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const left = Date.parse(el.dataset.deadline) - now();
      el.textContent = left >= 0 ? `in ${short(left)}` : `overdue ${short(left)}`;
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 5 * 60 * 1000);
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = short(now() - Date.parse(el.dataset.since));
    }
  }

  // A press in progress: replacing the region between mousedown and mouseup would swallow
  // the click (its two halves land on different elements), so a refresh waits for it.
  let pressed = false;
  document.addEventListener("pointerdown", () => { pressed = true; }, true);
  for (const type of ["pointerup", "pointercancel"]) {
    document.addEventListener(type, () => { pressed = false; }, true);
  }

  function editing(region) {
    if (pressed) return true;
    const active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    for (const el of region.querySelectorAll("input:not([type=hidden]), textarea")) {
      if (el.value !== el.defaultValue) return true;
    }
    for (const el of region.querySelectorAll("select")) {
      // with no option marked selected in the HTML, the first one is the default
      const initial = Math.max(0, Array.from(el.options).findIndex((o) => o.defaultSelected));
      if (el.options.length && el.selectedIndex !== initial) return true;
    }
    return false;
  }

  async function refresh(region) {
    if (document.hidden || editing(region)) return;
    try {
      const response = await fetch(region.dataset.refresh, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-Requested-With": "fetch" },
      });
      if (response.status === 401) { window.location.reload(); return; }
      if (!response.ok) throw new Error(String(response.status));
      const html = await response.text();
      if (editing(region)) return;
      region.innerHTML = html;
      region.classList.remove("stale");
      region.dataset.refreshed = String(Number(region.dataset.refreshed || 0) + 1);
      tick();
    } catch (err) {
      region.classList.add("stale");  // keep the last good content, show it may be old
    }
  }

  for (const region of document.querySelectorAll("[data-refresh]")) {
    const every = 1000 * Math.max(0.5, Number(region.dataset.interval || 5));
    setInterval(() => refresh(region), every);
  }
  tick();
  setInterval(tick, 1000);
})();
