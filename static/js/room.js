// Classroom rooms (docs/ws-protocol.md, "Rooms"): the presenter's room panel (audience link, room
// code, QR code, how many follow, hands raised, control handed over) and the audience's banner
// (read-only, "Take a copy", "Ask for control"). app.js routes `room` frames and outgoing frames
// here; nothing in this file knows a protocol.

const $ = (sel) => document.querySelector(sel);

export function makeRoom(page) {
  // page: {send, toast, sharePayload, onShare, state}
  const code = document.body.dataset.room || null; // the audience's page of this room, or null
  const r = {code, viewer: !!code, you: null, granted: false, told: false, open: null};

  function el(tag, attrs = {}, text = "") {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  }

  // --- the audience --------------------------------------------------------------------------
  function banner(f) {
    const b = $("#room-banner");
    b.hidden = false;
    b.textContent = "";
    const n = (f && typeof f.viewers === "number" ? ` · ${f.viewers} following` : "") +
      (r.you ? ` · you are viewer ${r.you}` : "");
    b.append(el("strong", {}, `Following room ${code}`), document.createTextNode(n + " · "));
    if (r.granted) {
      b.append(el("span", {class: "room-control", id: "room-you-control"}, "you have control: your clicks drive the room"));
    } else {
      b.append(el("span", {id: "room-readonly"}, "read-only: only the presenter's clicks count here"));
    }
    const copy = el("button", {type: "button", id: "btn-copy"}, "Take a copy");
    copy.title = "Open your own private copy of the room at this moment";
    copy.addEventListener("click", takeCopy);
    b.append(document.createTextNode(" "), copy);
    if (!r.granted) {
      const hand = el("button", {type: "button", id: "btn-hand"}, "Ask for control");
      hand.addEventListener("click", () => { page.send({type: "control", do: "room_hand"}, true); page.toast("The presenter was asked"); });
      b.append(document.createTextNode(" "), hand);
    }
  }

  async function takeCopy() {
    const p = await page.sharePayload();
    if (!p) return page.toast("Nothing to copy yet", true);
    const q = new URLSearchParams();
    if (document.body.classList.contains("projector")) q.set("projector", "1");
    q.set("protocol", document.body.dataset.protocol);
    q.set("share", p);
    q.set("from_room", code);
    location.href = `/?${q}`;
  }

  // A copy taken from a room offers the way back.
  const from = new URLSearchParams(location.search).get("from_room");
  if (!code && from && /^[A-Z0-9]{6}$/.test(from)) {
    const b = $("#room-banner");
    b.hidden = false;
    b.append(el("span", {}, `Your own copy of room ${from}: try anything, the room is not affected. `));
    const back = el("a", {href: `/room/${from}`, id: "btn-back", class: "button"}, "Back to the room");
    b.append(back);
  }

  // --- the presenter -------------------------------------------------------------------------
  function panel(f) {
    const p = $("#room-panel"), start = $("#room-start"), box = $("#room-open");
    if (!f.code) {
      r.open = null;
      start.hidden = false; box.hidden = true; p.hidden = true;
      $("#btn-room").setAttribute("aria-pressed", "false");
      $("#btn-room").setAttribute("aria-expanded", "false");
      return;
    }
    r.open = f;
    $("#btn-room").setAttribute("aria-pressed", "true");
    $("#btn-room").setAttribute("aria-expanded", "true");
    const url = `${location.origin}/room/${f.code}`;
    box.textContent = "";
    start.hidden = true; box.hidden = false; p.hidden = false;
    const img = el("img", {src: `/room/${f.code}/qr.svg`, alt: `QR code of ${url}`, class: "room-qr", width: "148", height: "148"});
    const info = el("div", {class: "room-info"});
    info.append(el("div", {class: "room-code mono", id: "room-code", "aria-label": "Room code"}, f.code),
                el("a", {href: url, id: "room-link", class: "mono", target: "_blank", rel: "noopener"}, url),
                el("div", {id: "room-count"}, `${f.viewers} following`));
    if (f.control) {
      const back = el("button", {type: "button", id: "btn-revoke"}, `Take control back from viewer ${f.control}`);
      back.addEventListener("click", () => page.send({type: "control", do: "room_revoke"}));
      info.append(back);
    }
    for (const h of f.hands || []) {
      const give = el("button", {type: "button", class: "btn-grant", "data-viewer": h}, `Give control to viewer ${h}`);
      give.addEventListener("click", () => page.send({type: "control", do: "room_grant", viewer: h}));
      info.append(give);
    }
    const close = el("button", {type: "button", id: "btn-room-close"}, "Close the room");
    close.addEventListener("click", () => page.send({type: "control", do: "room_close"}));
    info.append(close);
    box.append(img, info);
  }

  r.onFrame = (f) => {
    if (r.viewer) {
      if (f.you) r.you = f.you;
      if (typeof f.granted === "boolean") {
        if (f.granted !== r.granted) page.toast(f.granted ? "The presenter gave you control" : "The presenter took control back");
        r.granted = f.granted;
      }
      r.last = {...(r.last || {}), ...f};
      banner(r.last);
    } else {
      panel(f);
    }
  };

  // Outgoing frames: true when handled here. An audience page without control sends only what
  // a viewer may (a fresh picture, a raised hand); its clicks are refused, said once.
  r.intercept = (obj, force) => {
    if (!r.viewer || r.granted || force) return false;
    if (obj.type === "control" && obj.do === "snapshot") return false;
    if (obj.type === "control" && obj.do === "share") {
      page.sharePayload().then((p) => { if (p) page.onShare({payload: p, t: page.state.t}); });
      return true;
    }
    r.readOnly();
    return true;
  };
  r.readOnly = () => {
    if (r.told) return;
    r.told = true;
    page.toast(`You are following room ${code}: your clicks do nothing to it. Take a copy to try it yourself.`, true);
  };

  if (r.viewer) banner(null);
  else {
    $("#btn-room").addEventListener("click", () => {
      const p = $("#room-panel");
      p.hidden = !p.hidden;
      $("#btn-room").setAttribute("aria-expanded", String(!p.hidden));
    });
    $("#btn-room-open").addEventListener("click", () => page.send({type: "control", do: "room_open"}));
  }
  return r;
}
