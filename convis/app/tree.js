// ConVis synset tree: the body of `js_on_load` (given: element, props, trigger, server, watch).
// The template is a static container; this code owns the DOM below it. Expand state lives here,
// not in props.value, because setting props.value re-renders the template and wipes the DOM.
// Labels go in with textContent (never innerHTML): names such as jack-o'-lantern.n.01 are safe.
const PAGE = 100;
const SEP = "|";  // path keys: a synset reached through two parents is two rows with two keys
const S = {vocab: null, title: "", error: "", roots: [], kids: new Map(), open: new Set(),
           sel: null, focus: null, busy: new Set()};

const tree = () => element.querySelector(".cvt-tree");
const rows = () => Array.from(tree() ? tree().querySelectorAll("li[data-nav]") : []);
const byKey = (key) => rows().find((li) => li.dataset.key === key);

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function merge(kids) {
  for (const [id, page] of Object.entries(kids || {})) {
    const old = S.kids.get(id);
    if (!old || old.items.length < page.items.length) S.kids.set(id, {items: page.items, total: page.total});
  }
}

function load(v) {
  if (!v || typeof v !== "object") return;
  if (v.vocabulary !== S.vocab) {  // another concept set: nothing cached is valid any more
    S.kids = new Map(); S.open = new Set(); S.sel = null; S.focus = null;
  }
  S.vocab = v.vocabulary; S.title = v.title || ""; S.error = v.error || ""; S.roots = v.roots || [];
  merge(v.kids);
  for (const key of v.open || []) S.open.add(key);
  if ("selected" in v) S.sel = v.selected;
  if (v.focus) S.focus = v.focus;
  render();
  const row = v.focus && byKey(v.focus);
  if (row) row.scrollIntoView({block: "nearest"});
}

function item(n, key, level) {
  const li = document.createElement("li");
  const open = S.open.has(key);
  li.setAttribute("role", "treeitem");
  li.setAttribute("aria-level", String(level));
  li.setAttribute("aria-selected", n.id === S.sel ? "true" : "false");
  if (n.n > 0) li.setAttribute("aria-expanded", open ? "true" : "false");
  li.dataset.key = key; li.dataset.id = n.id; li.dataset.nav = "1"; li.tabIndex = -1;
  const row = document.createElement("div");
  row.className = "cvt-row";
  row.style.setProperty("--lvl", String(level - 1));
  row.title = n.id + ": " + n.g;
  const tw = span("cvt-twisty", n.n > 0 ? (open ? "\u25BE" : "\u25B8") : "\u00B7");
  tw.dataset.act = "toggle";
  tw.setAttribute("aria-hidden", "true");
  row.append(tw, span("cvt-label", n.label), span("cvt-sense", n.sense));
  if (n.n > 0) row.append(span("cvt-count", String(n.n)));
  if (n.p && n.p.length > 1) {
    const m = span("cvt-multi", "\u2191" + n.p.length);  // "↑2": reachable from two parents
    m.title = "also under " + n.p.join(", ");
    row.append(m);
  }
  li.append(row);
  if (open && n.n > 0) {
    const ul = document.createElement("ul");
    ul.setAttribute("role", "group");
    const page = S.kids.get(n.id);
    if (!page) ul.append(note("loading\u2026", level + 1));
    else {
      for (const c of page.items) ul.append(item(c, key + SEP + c.id, level + 1));
      if (page.items.length < page.total) ul.append(moreRow(n.id, key, page, level + 1));
    }
    li.append(ul);
  }
  return li;
}

function note(text, level) {
  const li = document.createElement("li");
  li.className = "cvt-note";
  li.setAttribute("role", "none");
  li.style.setProperty("--lvl", String(level - 1));
  li.textContent = text;
  return li;
}

function moreRow(id, key, page, level) {
  const li = note("", level);
  const left = page.total - page.items.length;
  li.className = "cvt-more";
  li.setAttribute("role", "treeitem");
  li.dataset.nav = "1"; li.dataset.more = id; li.dataset.key = key + SEP + "\u2026"; li.tabIndex = -1;
  li.textContent = "show " + Math.min(PAGE, left) + " more (" + left + " not shown)";
  return li;
}

function render() {
  const t = tree();
  if (!t) return;
  const hadFocus = element.contains(document.activeElement);
  const head = element.querySelector(".cvt-head");
  head.textContent = S.error || S.title;
  head.classList.toggle("cvt-error", !!S.error);
  const frag = document.createDocumentFragment();
  for (const r of S.roots) frag.append(item(r, r.id, 1));
  t.replaceChildren(frag);
  const target = (S.focus && byKey(S.focus)) || t.querySelector("li[data-nav]");
  if (target) {
    target.tabIndex = 0;  // roving tabindex: one tab stop for the whole tree
    if (hadFocus) target.focus({preventScroll: true});
  }
}

async function fetchPage(id, offset) {
  if (S.busy.has(id)) return;
  const vocab = S.vocab;
  S.busy.add(id);
  try {
    const page = await server.fetch_children({vocabulary: vocab, synset: id, offset: offset, limit: PAGE});
    if (vocab !== S.vocab) return;
    if (page.error) { S.error = page.error; return; }
    const old = S.kids.get(id);
    S.kids.set(id, {items: offset > 0 && old ? old.items.concat(page.items) : page.items, total: page.total});
  } catch (err) {
    S.error = "could not load the children of " + id + ": " + err;
  } finally {
    S.busy.delete(id);
  }
}

async function toggle(key, id, want) {
  const open = S.open.has(key);
  if (want === undefined) want = !open;
  if (want === open) return;
  S.focus = key;
  if (!want) { S.open.delete(key); render(); return; }
  S.open.add(key);
  render();
  if (!S.kids.has(id)) { await fetchPage(id, 0); render(); }
}

async function more(li) {
  const id = li.dataset.more, parentKey = li.dataset.key.slice(0, -2);
  const before = (S.kids.get(id) || {items: []}).items.length;
  await fetchPage(id, before);
  const page = S.kids.get(id);
  if (page && page.items.length > before) S.focus = parentKey + SEP + page.items[before].id;
  render();
}

function select(id, key) {
  S.sel = id; S.focus = key;
  for (const li of rows()) {
    if (li.dataset.id) li.setAttribute("aria-selected", li.dataset.id === id ? "true" : "false");
  }
  trigger("select_node", {synset: id, path: key.split(SEP)});
}

element.addEventListener("click", (e) => {
  const li = e.target.closest("li[data-nav]");
  if (!li || !element.contains(li)) return;
  if (li.dataset.more) { S.focus = li.dataset.key; more(li); return; }
  if (e.target.closest("[data-act=toggle]")) toggle(li.dataset.key, li.dataset.id);
  else select(li.dataset.id, li.dataset.key);
});

element.addEventListener("dblclick", (e) => {
  const li = e.target.closest("li[data-nav]");
  if (li && li.dataset.id && !e.target.closest("[data-act=toggle]")) toggle(li.dataset.key, li.dataset.id);
});

element.addEventListener("keydown", (e) => {
  const li = e.target.closest && e.target.closest("li[data-nav]");
  if (!li) return;
  const all = rows(), i = all.indexOf(li), key = li.dataset.key, id = li.dataset.id;
  const canOpen = li.hasAttribute("aria-expanded");
  const go = (t) => {
    if (!t) return;
    for (const x of all) x.tabIndex = -1;
    t.tabIndex = 0; t.focus(); S.focus = t.dataset.key;
  };
  switch (e.key) {
    case "ArrowDown": go(all[i + 1]); break;
    case "ArrowUp": go(all[i - 1]); break;
    case "Home": go(all[0]); break;
    case "End": go(all[all.length - 1]); break;
    case "ArrowRight":
      if (canOpen && !S.open.has(key)) toggle(key, id, true); else if (canOpen) go(all[i + 1]);
      break;
    case "ArrowLeft":
      if (canOpen && S.open.has(key)) toggle(key, id, false);
      else go(li.parentElement.closest("li[data-nav]"));
      break;
    case "Enter": case " ":
      if (li.dataset.more) more(li); else select(id, key);
      break;
    default: return;
  }
  e.preventDefault();
});

watch("value", () => load(props.value));
load(props.value);
