// uPlot (static/vendor/uPlot.iife.min.js, MIT; see static/vendor/README.md), loaded on first use:
// a script from this server, so the page's CSP (script-src 'self', no eval) allows it. True when it
// is there already; otherwise `onload` runs once it is.
export function loadUPlot(onload) {
  if (window.uPlot) return true;
  let sc = document.getElementById("uplot-js");
  if (!sc) {
    const css = document.createElement("link");
    css.rel = "stylesheet"; css.href = "/static/vendor/uPlot.min.css";
    document.head.appendChild(css);
    sc = document.createElement("script");
    sc.id = "uplot-js"; sc.src = "/static/vendor/uPlot.iife.min.js";
    document.head.appendChild(sc);
  }
  sc.addEventListener("load", onload, {once: true});
  return false;
}
