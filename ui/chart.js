/* chart.js — herald's own tiny SVG sparkline: a line and its area over the
 * last N values, scaled to the largest. No library, no inline style. */
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  function sparkline(svg, values) {
    const box = svg.viewBox.baseVal;
    const w = box.width || 240, h = box.height || 48;
    const max = Math.max(1, ...values);
    const step = values.length > 1 ? w / (values.length - 1) : w;
    const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`);
    let line = svg.querySelector('polyline');
    let area = svg.querySelector('polygon');
    if (!line) {
      area = document.createElementNS(NS, 'polygon');
      area.setAttribute('class', 'area');
      line = document.createElementNS(NS, 'polyline');
      svg.append(area, line);
    }
    line.setAttribute('points', pts.join(' '));
    area.setAttribute('points', pts.length ? `0,${h} ${pts.join(' ')} ${((values.length - 1) * step).toFixed(1)},${h}` : '');
  }
  window.HdChart = { sparkline };
})();
