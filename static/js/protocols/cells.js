// Helpers the protocol modules' side panels share: escaping text into HTML, and a table cell's
// words shown on click or tap (not only in a hover tooltip: projectors and touch screens).

const ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);  // labels carry user-typed keys

// A click in a panel: a cell with data-what tells its words in the panel's .log-detail line.
export function cellClick(e, state, el) {
  const td = e.target.closest("td[data-what]");
  if (!td) return;
  state.logDetail = td.dataset.what;
  el.querySelector(".log-detail").textContent = state.logDetail;
}
