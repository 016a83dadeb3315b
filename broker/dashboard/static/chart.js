// A line chart of online users over a time window, drawn as SVG from app
// code (the Content-Security-Policy allows no inline script or style:
// colours and fonts come from dashboard.css through class names).

const NS = "http://www.w3.org/2000/svg";
// The drawing's own units; the SVG scales to its box, keeping its shape.
const W = 560;
const H = 190;
const PAD = { left: 40, right: 14, top: 12, bottom: 26 };

const clockMinutes = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const clockSeconds = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const numberFormat = new Intl.NumberFormat();

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text) node.textContent = text;
  return node;
}

/** The tick spacing that gives about count ticks over span: 1, 2 or 5
 * times a power of ten, and at least min. */
function niceStep(span, count, min = 1) {
  const raw = Math.max(span / count, min);
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

// Time tick spacings, in ms: the first that gives at most six ticks.
const TIME_STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600]
  .map((s) => s * 1000);

export class Chart {
  #svg;
  #window;
  #label;
  #data = { samples: [], step: 0, now: 0 };
  #hover;
  #plot; // the geometry of the last drawing, for the hover read-out

  /** figure: the element to draw in; windowMs: the time shown, ending
   * now; label: what the chart shows, for screen readers. */
  constructor(figure, windowMs, label) {
    this.#window = windowMs;
    this.#label = label;
    this.#svg = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot", "aria-label": label });
    figure.append(this.#svg);
    this.#svg.addEventListener("pointermove", (ev) => this.#pointer(ev));
    this.#svg.addEventListener("pointerleave", () => this.#hideHover());
  }

  /** Draws samples ([{t: ms, online}], oldest first) taken every step ms,
   * over the window that ends at now (ms). */
  draw(samples, step, now) {
    this.#data = { samples, step, now };
    const s = this.#svg;
    s.replaceChildren();
    const x0 = PAD.left, x1 = W - PAD.right, y0 = H - PAD.bottom, y1 = PAD.top;
    const start = now - this.#window;
    const shown = samples.filter((p) => p.t >= start && p.t <= now);
    const top = Math.max(1, ...shown.map((p) => p.online));
    const yStep = niceStep(top, 4);
    const yMax = Math.ceil(top / yStep) * yStep;
    const x = (t) => x0 + ((t - start) / this.#window) * (x1 - x0);
    const y = (v) => y0 - (v / yMax) * (y0 - y1);
    this.#plot = { x, y, shown, x0, x1, y0, y1 };

    // Grid and axes.
    const grid = svg("g", { class: "grid-lines", "aria-hidden": "true" });
    for (let v = 0; v <= yMax; v += yStep) {
      grid.append(svg("line", { x1: x0, x2: x1, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "" }));
      grid.append(svg("text", { x: x0 - 6, y: y(v) + 4, class: "tick y" }, numberFormat.format(v)));
    }
    const tStep = TIME_STEPS.find((d) => this.#window / d <= 6) ?? TIME_STEPS.at(-1);
    // Ticks on round local times.
    const offset = new Date(now).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((start - offset) / tStep) * tStep + offset; t <= now; t += tStep) {
      grid.append(svg("line", { x1: x(t), x2: x(t), y1: y0, y2: y0 + 4, class: "axis" }));
      const fmt = tStep < 60000 ? clockSeconds : clockMinutes;
      grid.append(svg("text", { x: x(t), y: H - 8, class: "tick x" }, fmt.format(t)));
    }
    s.append(grid);

    s.dataset.samples = String(shown.length);
    s.dataset.step = String(step);
    if (shown.length === 0) {
      s.dataset.state = "empty";
      delete s.dataset.last;
      s.append(svg("text", { x: (x0 + x1) / 2, y: (y0 + y1) / 2, class: "empty" }, "No samples yet"));
      s.setAttribute("aria-label", `${this.#label}: no samples yet`);
      return;
    }

    // The line, broken where samples are missing (no node sampled), and
    // the area under it.
    const gap = 1.5 * step;
    let line = "";
    let area = "";
    let run = [];
    const flush = () => {
      if (run.length === 0) return;
      const pts = run.map((p) => `${x(p.t).toFixed(1)},${y(p.online).toFixed(1)}`);
      line += `M${pts.join("L")}`;
      area += `M${x(run[0].t).toFixed(1)},${y0}L${pts.join("L")}L${x(run.at(-1).t).toFixed(1)},${y0}Z`;
      run = [];
    };
    for (const p of shown) {
      if (run.length > 0 && p.t - run.at(-1).t > gap) flush();
      run.push(p);
    }
    flush();
    s.append(svg("path", { d: area, class: "area" }));
    s.append(svg("path", { d: line, class: "line" }));
    const last = shown.at(-1);
    s.append(svg("circle", { cx: x(last.t), cy: y(last.online), r: 3.5, class: "last" }));
    s.dataset.state = "drawn";
    s.dataset.last = String(last.online);
    const peak = Math.max(...shown.map((p) => p.online));
    s.setAttribute("aria-label", `${this.#label}: ${numberFormat.format(last.online)} at the last sample, ` +
      `at most ${numberFormat.format(peak)}`);

    this.#hover = svg("g", { class: "hover", visibility: "hidden" });
    this.#hover.append(svg("line", { y1: y1, y2: y0 }), svg("circle", { r: 4 }), svg("text", { y: y1 + 10 }));
    s.append(this.#hover);
  }

  /** Redraws the last samples over the window ending now. */
  redraw(now) {
    const { samples, step } = this.#data;
    this.draw(samples, step, now);
  }

  #pointer(ev) {
    const p = this.#plot;
    if (!p || p.shown.length === 0 || !this.#hover) return;
    const box = this.#svg.getBoundingClientRect();
    const vx = ((ev.clientX - box.left) / box.width) * W;
    let best = p.shown[0];
    for (const q of p.shown) if (Math.abs(p.x(q.t) - vx) < Math.abs(p.x(best.t) - vx)) best = q;
    const hx = p.x(best.t), hy = p.y(best.online);
    const [line, dot, text] = this.#hover.children;
    line.setAttribute("x1", hx);
    line.setAttribute("x2", hx);
    dot.setAttribute("cx", hx);
    dot.setAttribute("cy", hy);
    text.textContent = `${clockSeconds.format(best.t)} · ${numberFormat.format(best.online)} online`;
    const right = hx > (p.x0 + p.x1) / 2;
    text.setAttribute("x", right ? hx - 6 : hx + 6);
    text.setAttribute("text-anchor", right ? "end" : "start");
    this.#hover.setAttribute("visibility", "visible");
  }

  #hideHover() {
    this.#hover?.setAttribute("visibility", "hidden");
  }
}
