// The renderer registry: one module per protocol, each exporting look(node), badge(node, state),
// legend, menu(id, node) and renderLog(el, state, projector). Paxos, the coordination service and
// the load balancers add a module here; the canvas and the controls stay the same.

import * as raft from "./raft.js";

const REGISTRY = {raft};

export function getProtocol(name) {
  return REGISTRY[name] || raft;
}
