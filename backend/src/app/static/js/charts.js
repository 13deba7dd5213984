// Charts through TradingView Lightweight Charts (vendored, Apache-2.0; attribution in the page footer).
const LC = () => window.LightweightCharts;
const COLORS = ["#58a6ff", "#d29922", "#3fb950", "#bc8cff", "#f85149", "#39c5cf"];

function base(container, opts) {
  const chart = LC().createChart(container, {
    autoSize: true,
    layout: { background: { color: "#171d24" }, textColor: "#8a94a6", attributionLogo: false },
    grid: { vertLines: { color: "#1f2733" }, horzLines: { color: "#1f2733" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#263040" },
    rightPriceScale: { borderColor: "#263040" },
    ...(opts || {}),
  });
  return chart;
}

// Points must be strictly increasing in time (seconds): keep the last value of any repeated second.
function series(ts, values) {
  const out = [];
  for (let i = 0; i < ts.length; i++) {
    const time = Math.floor(ts[i]);
    if (values[i] === null || values[i] === undefined) continue;
    if (out.length && out[out.length - 1].time >= time) out[out.length - 1].value = values[i];
    else out.push({ time, value: values[i] });
  }
  return out;
}

// lines: [{name, t (seconds), values}]
export function lineChart(container, lines, opts) {
  const chart = base(container, opts);
  lines.forEach((l, i) => {
    const s = chart.addSeries(LC().LineSeries, { color: l.color || COLORS[i % COLORS.length], lineWidth: 2, title: l.name, priceLineVisible: false });
    s.setData(series(l.t, l.values));
  });
  chart.timeScale().fitContent();
  return chart;
}

export function histogram(container, bars) {
  const chart = base(container);
  const s = chart.addSeries(LC().HistogramSeries, { priceLineVisible: false });
  s.setData(bars.map((b) => ({ time: b.time, value: b.value, color: b.value >= 0 ? "#3fb950" : "#f85149" })));
  chart.timeScale().fitContent();
  return chart;
}

// candles: [{ts (ms), o, h, l, c}], fills: [{ts (ms), side, qty, price}]
export function candleChart(container, candles, fills) {
  const chart = base(container);
  const s = chart.addSeries(LC().CandlestickSeries, { upColor: "#3fb950", downColor: "#f85149", borderVisible: false, wickUpColor: "#3fb950", wickDownColor: "#f85149" });
  const data = [];
  for (const c of candles) {
    const time = Math.floor(c.ts / 1000);
    if (data.length && data[data.length - 1].time >= time) continue;
    data.push({ time, open: c.o, high: c.h, low: c.l, close: c.c });
  }
  s.setData(data);
  const first = data.length ? data[0].time : 0;
  // a liquidation stands out: a purple circle, named
  const markers = fills.filter((f) => Math.floor(f.ts / 1000) >= first).map((f) => f.reason === "liquidation" ? {
    time: Math.floor(f.ts / 1000), position: "aboveBar", color: "#a371f7", shape: "circle",
    text: "LIQUIDATION " + f.side + " " + Number(f.qty).toPrecision(4),
  } : {
    time: Math.floor(f.ts / 1000),
    position: f.side === "buy" ? "belowBar" : "aboveBar",
    color: f.side === "buy" ? "#3fb950" : "#f85149",
    shape: f.side === "buy" ? "arrowUp" : "arrowDown",
    text: f.side + " " + Number(f.qty).toPrecision(4),
  }).sort((a, b) => a.time - b.time);
  LC().createSeriesMarkers(s, markers);
  chart.timeScale().fitContent();
  return chart;
}
