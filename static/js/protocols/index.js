// The page-module registry: one module per protocol, the only page code that knows the protocol.
// Adding a protocol is a module file and one line in REGISTRY. An unknown protocol is an error
// (shown on the page), never another protocol's look.
//
// A module exports (app.js and canvas.js read nothing else about a protocol):
//   title                         the name shown ("Raft")
//   look(node)                    {cls, label, words, sub}: CSS role class (role-<cls>), the label
//                                 in the circle, words for screen readers and menu titles, the
//                                 second line (e.g. "term 2"); optional `fill` colour
//   dataset(node)                 {key: string}: extra data-* attributes on the node's element
//   badge(node, state)            the line under a node
//   ring(node, state, now)        0..1, how full the node's timer ring is, or null for none
//   ringLabel                     what the ring is, for the legend
//   legend                        [[cls, label], ...] the role swatches
//   pills                         {class: {fill, stroke, ink}}: pill colours by message class
//   layout(topology, clients)     optional: {pos: {id: [x, y]}, nodeR}; default a circle
//   menuTitle(id, node)           the node menu's title
//   menu(id, node, state)         [{label, action} | {label, say}]: `action` an action object (or
//                                 a function returning one, called when chosen), `say` a reason
//                                 shown instead. Generic items (fire a timer) are added after.
//   timerWords(name)              a timer in words ("election timer")
//   requestLabel, request(state)  the toolbar's client button: {action} | {say}
//   keys                          {key: (state) => {action} | {say}}: the protocol's shortcuts
//   ingest(state, id, node)       a snapshot's node summary -> what state.nodes[id] keeps
//   applyDeltas(state, deltas)    an events frame's `deltas` (app/protocols/<name>.py `deltas`)
//   panelLabel, renderPanel(el, state, projector), panelClick(event, state, el)
//                                 the side panel (Raft: the logs); panelClick may return an item
//                                 as a menu's ({action} | {say} | {control}: a control frame)
//   panelChange(event, state)     optional: a `change` in the panel -> an item, as panelClick
//   applySeries(state, series)    optional: a frame's `series` (what the world's writing
//                                 observers wrote, through the adapter's `series`; `full` in a
//                                 snapshot replaces, otherwise it appends)
//   dot(m, state, now)            optional: draw message m (a flight entry) as a dot {r, fill,
//                                 stroke?, line?, offset?} instead of a labelled pill (messages
//                                 waiting under manual delivery stay pills); null: a pill
//   decorate(nodeEls, state, nodeR) optional: after nodes are updated, draw more on them (every
//                                 node's {g, ...} is given: one node's change may show on another)
//                                 the side panel (Raft: the logs)
//   compareSeries(state)          optional, compare mode: {name: number}, the numbers worth setting
//                                 side by side for one world's state (e.g. a latency percentile,
//                                 a term). The generic page shows them as a table, one row per name
//                                 and one column per world, refreshed with every frame; a chart
//                                 overlaying each world's series over time reads the same hook.
//
// In compare mode each world has its own `state` (built from its part of the frames: nodes, logs,
// flight, extras, t), and every function above is called with the state of the world concerned.

import * as chubby from "./chubby.js";
import * as lb from "./lb.js";
import * as paxos from "./paxos.js";
import * as raft from "./raft.js";
import * as zk from "./zk.js";

const REGISTRY = {raft, paxos, lb, zk, chubby};

export const known = () => Object.keys(REGISTRY).sort();

export function getProtocol(name) {
  const m = Object.prototype.hasOwnProperty.call(REGISTRY, name) ? REGISTRY[name] : null;
  if (!m) throw new Error(`protocol: no page module for ${JSON.stringify(String(name))} (known: ${known().join(", ")})`);
  return m;
}
