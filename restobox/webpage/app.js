// The table QR ordering page. No framework, no CDN: everything is served by
// `restobox web`. The hub prices and numbers orders; this page only shows
// the menu the hub publishes and sends the diner's choices (restobox/web.py).
"use strict";
(function () {
  const T = {
    zh: {
      table: (t) => `${t} 号桌`, lang: "EN", loading: "菜单加载中……", add: "加入", addTo: (p) => `加入购物车 · ${p}`,
      required: (n) => `必选 · 选${n}项`, requiredRange: (a, b) => `必选 · ${a}–${b}项`, optional: (n) => `可选 · 最多${n}项`,
      still: (names) => `还需选择：${names}`, qty: "数量", soldout: "售罄", view: "查看订单", items: "件",
      cart: "我的购物车", note: "给厨房的备注（可不填）", pay: "下单后请到柜台付款。", total: "合计",
      place: "下单", sending: "正在下单……", pending: "订单已发出，正在等待厨房确认……请勿关闭页面。",
      removeGone: "移除售罄的菜品", number: "您的取餐号", orderMore: "再点一些", myOrders: "我的订单",
      steps: ["已接单", "制作中", "可取餐", "已完成"],
      states: { accepted: "厨房已收到您的订单", in_progress: "厨房正在制作", ready: "做好了！请留意叫号",
                completed: "已完成，祝您用餐愉快", voided: "订单已取消，如有疑问请咨询店员",
                held: "等待付款：付款后厨房开始制作" },
      payAt: (p) => `请到柜台付款 ${p}`, tax: "其中税额", subtotal: "小计", empty: "购物车是空的",
      hubOff: "厨房系统暂时无法接单，请稍候或到柜台点餐。", allergens: "过敏原：", itemGone: (n) => `「${n}」已售罄`,
      network: "网络不稳定，正在重试……", close: "关闭",
      phone: "会员手机号（可不填）", phoneHint: "留下手机号，本单即可积分。",
      badPhone: "手机号码不正确：请输入 11 位手机号（1 开头）。",
      points: (m, e, b) => `会员 ${m}：本单积分 +${e}，余额 ${b}`, pointsUsed: (n, p) => `已用 ${n} 积分，抵 ${p}`,
      pointsOff: (m) => `会员 ${m}：本店暂未开通积分`,
      payPhone: (p) => `手机支付 ${p}`, payStarting: "正在打开支付……", orCounter: (p) => `也可以到柜台付款 ${p}`,
      paid: "已付款", payOpen: "支付尚未完成。可以继续支付（不会重复扣款）。", checking: "正在确认支付结果……",
      payExpired: "支付没有完成。可以重新支付，或到柜台付款。", notPaid: "还没有收到这笔付款。可以继续支付，或到柜台付款。",
      strayRefund: "这笔手机支付无法记入订单（订单已付款、已取消或金额不符），款项正在原路退回。",
      refundedOrder: "这个订单的款项已退回。", network: "网络不稳定，正在重试……",
      payContinue: (p) => `继续支付 ${p}`,
    },
    en: {
      table: (t) => `Table ${t}`, lang: "中文", loading: "Loading the menu…", add: "Add", addTo: (p) => `Add to order · ${p}`,
      required: (n) => `Required · choose ${n}`, requiredRange: (a, b) => `Required · ${a}–${b}`, optional: (n) => `Optional · up to ${n}`,
      still: (names) => `Still to choose: ${names}`, qty: "Quantity", soldout: "Sold out", view: "View order", items: "items",
      cart: "Your order", note: "Note for the kitchen (optional)", pay: "Pay at the counter after ordering.", total: "Total",
      place: "Place order", sending: "Placing your order…", pending: "Your order is on its way; waiting for the kitchen to confirm… please keep this page open.",
      removeGone: "Remove sold-out items", number: "Your order number", orderMore: "Order more", myOrders: "My orders",
      steps: ["Received", "Cooking", "Ready", "Served"],
      states: { accepted: "The kitchen has your order", in_progress: "The kitchen is cooking it", ready: "Ready! Listen for your number",
                completed: "Served. Enjoy your meal!", voided: "This order was cancelled; please ask the staff",
                held: "Waiting for payment: the kitchen starts once it is paid" },
      payAt: (p) => `Please pay at the counter: ${p}`, tax: "incl. tax", subtotal: "Subtotal", empty: "Your order is empty",
      hubOff: "The kitchen cannot take orders right now; please wait a moment or order at the counter.",
      allergens: "Allergens: ", itemGone: (n) => `${n} is sold out`, network: "The network is unsteady; trying again…", close: "Close",
      phone: "Member phone number (optional)", phoneHint: "Give your mobile number to earn points on this order.",
      badPhone: "That number is not valid: please enter your 11-digit mobile number (starting with 1).",
      points: (m, e, b) => `Member ${m}: +${e} points, balance ${b}`, pointsUsed: (n, p) => `${n} points used: ${p} off`,
      pointsOff: (m) => `Member ${m}: this store offers no points right now`,
      payPhone: (p) => `Pay on the phone ${p}`, payStarting: "Opening the payment…", orCounter: (p) => `Or pay at the counter: ${p}`,
      paid: "Paid", payOpen: "The payment is not finished yet. You can go on with it (you will not be charged twice).",
      checking: "Checking your payment…",
      payExpired: "The payment was not completed. Pay again, or pay at the counter.",
      notPaid: "This payment has not reached us. Go on with it, or pay at the counter.",
      strayRefund: "This phone payment could not be kept for the order (paid already, cancelled or a wrong amount): it is being refunded to you.",
      refundedOrder: "The money for this order was refunded.",
      payContinue: (p) => `Continue payment ${p}`,
    },
  };
  const ALLERGENS = {
    celery: ["芹菜", "celery"], gluten: ["麸质", "gluten"], crustaceans: ["甲壳类", "crustaceans"], egg: ["蛋", "egg"],
    fish: ["鱼", "fish"], lupin: ["羽扇豆", "lupin"], milk: ["奶", "milk"], molluscs: ["软体动物", "molluscs"],
    mustard: ["芥末", "mustard"], peanut: ["花生", "peanut"], sesame: ["芝麻", "sesame"], soy: ["大豆", "soy"],
    sulphites: ["亚硫酸盐", "sulphites"], "tree-nut": ["坚果", "tree nuts"],
  };
  const STEP_OF = { held: 0, accepted: 0, in_progress: 1, ready: 2, completed: 3 };

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const table = decodeURIComponent(location.pathname.split("/")[2] || "");
  const KEY = `restobox.qr.${table}`;
  const params = new URLSearchParams(location.search);

  // uuid v4 from getRandomValues: crypto.randomUUID needs HTTPS, a store's Wi-Fi page is plain HTTP
  function uuid4() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const saved = (() => { try { return JSON.parse(localStorage.getItem(KEY) || "{}"); } catch (e) { return {}; } })();
  const S = {
    lang: params.get("lang") || saved.lang || ((navigator.language || "zh").startsWith("zh") ? "zh" : "en"),
    menu: null, store: null, photos: {}, soldout: new Set(), hubOnline: true,
    cart: saved.cart || { order_id: null, lines: [], note: "", locked: false, maybeSent: false },
    orders: saved.orders || [],   // OrderView, newest first
    view: "menu", editor: null, refusal: null, sending: false, retryNote: false, cat: null,
    phoneRules: null, phoneError: false,   // phoneRules: RegExps from the menu's loyalty; null: no points here
    phonePay: false, payOffer: null,       // phone payment offered here; can it be taken now (pay/status)
    paying: null, checking: null, payError: null,  // the order being sent to the wallet / checked on return
  };
  if (S.lang !== "zh" && S.lang !== "en") S.lang = "zh";
  let idx = { items: {}, groups: {}, options: {}, cats: [] };
  function save() {
    try { localStorage.setItem(KEY, JSON.stringify({ lang: S.lang, cart: S.cart, orders: S.orders.slice(0, 10) })); } catch (e) { /* private mode */ }
  }
  const t = () => T[S.lang];
  const nm = (n) => (n ? n[S.lang] : "");
  const other = (n) => (n ? n[S.lang === "zh" ? "en" : "zh"] : "");
  const money = (fen) => `¥${(fen / 100).toFixed(2)}`;

  // a phone number as restobox/loyalty.py reads it: no spaces or dashes, no leading +86 before a mainland mobile
  function normalisePhone(p) {
    let n = String(p || "").replace(/[\s-]/g, "");
    if (n.startsWith("+86") && S.phoneRules && S.phoneRules[0].test(n.slice(3))) n = n.slice(3);
    return n;
  }
  const validPhone = (p) => !!S.phoneRules && S.phoneRules.some((re) => re.test(normalisePhone(p)));

  // ------------------------------------------------------------ menu
  function indexMenu(menu) {
    const items = {}, groups = {}, options = {};
    for (const g of menu.modifier_groups) { groups[g.id] = g; for (const o of g.options) options[o.id] = o; }
    for (const it of menu.items) items[it.id] = it;
    const cats = menu.categories.map((c) => ({ ...c, items: menu.items.filter((i) => i.category === c.id) }))
      .filter((c) => c.items.length);
    idx = { items, groups, options, cats };
  }
  const isOut = (item) => !item.available || S.soldout.has(item.id);
  function unitPrice(line) {
    const item = idx.items[line.item_id];
    if (!item) return 0;
    return item.price + line.modifiers.reduce((s, m) => s + (idx.options[m] ? idx.options[m].price_delta : 0), 0);
  }
  const cartTotal = () => S.cart.lines.reduce((s, l) => s + unitPrice(l) * l.qty, 0);
  const cartCount = () => S.cart.lines.reduce((s, l) => s + l.qty, 0);

  async function loadMenu() {
    try {
      const r = await fetch("/api/menu", { cache: "no-store" });
      if (!r.ok) throw new Error(String(r.status));
      const j = await r.json();
      S.menu = j.menu; S.store = j.store; S.photos = j.photos || {}; indexMenu(j.menu);
      S.phoneRules = j.loyalty ? j.loyalty.patterns.map((pat) => new RegExp(`^(?:${pat})$`)) : null;
      S.phonePay = !!j.phone_pay;
      if (!S.cat && idx.cats.length) S.cat = idx.cats[0].id;
    } catch (e) {
      S.hubOnline = false;
      setTimeout(loadMenu, 3000);
    }
    render();
  }

  // ---------------------------------------------------------- render
  function render() {
    document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
    $("lang-btn").textContent = t().lang;
    $("table-chip").textContent = t().table(table);
    $("store-name").textContent = S.store ? S.store[S.lang] : "";
    document.title = `${S.store ? S.store[S.lang] + " · " : ""}${t().table(table)}`;
    const ob = $("orders-btn");
    ob.hidden = !S.orders.length || S.view === "status";
    ob.textContent = t().myOrders;
    const banner = $("banner");
    banner.hidden = S.hubOnline || !S.menu;
    banner.textContent = t().hubOff;
    $("menu").hidden = S.view !== "menu";
    $("status").hidden = S.view !== "status";
    $("cats").hidden = S.view !== "menu";
    if (S.view === "menu") renderMenu(); else renderStatus();
    renderCartBar();
    if (S.editor) renderEditor();
    if (!$("cart-sheet").hidden) renderCart();
  }

  function renderMenu() {
    if (!S.menu) { $("menu").innerHTML = `<p class="loading">${esc(t().loading)}</p>`; $("cats").innerHTML = ""; return; }
    $("cats").innerHTML = idx.cats.map((c) =>
      `<button type="button" class="cat${c.id === S.cat ? " on" : ""}" data-cat="${esc(c.id)}">${esc(nm(c.name))}</button>`).join("");
    const inCart = {};
    for (const l of S.cart.lines) inCart[l.item_id] = (inCart[l.item_id] || 0) + l.qty;
    $("menu").innerHTML = idx.cats.map((c) => `
      <h2 class="cat-title" id="cat-${esc(c.id)}" style="--cat:${esc(c.color)}">${esc(nm(c.name))}</h2>
      ${c.items.map((it) => {
        const out = isOut(it);
        return `<div class="item${out ? " soldout" : ""}" data-item="${esc(it.id)}" style="--cat:${esc(it.color || c.color)}">
          <div class="badge-round" aria-hidden="true">${esc(Array.from(it.name.zh)[0] || "")}${photoOf(it)}</div>
          <div class="item-main">
            <div class="item-name">${esc(nm(it.name))}${out ? `<span class="soldout-tag">${esc(t().soldout)}</span>` : ""}${inCart[it.id] ? `<span class="in-cart">${inCart[it.id]}</span>` : ""}</div>
            <div class="item-sub">${esc(other(it.name))}</div>
            ${it.description ? `<div class="item-desc">${esc(nm(it.description))}</div>` : ""}
            <div class="item-row"><span class="price">${money(it.price)}</span>
              <button type="button" class="add" data-add="${esc(it.id)}" ${out ? "disabled" : ""} aria-label="${esc(t().add)} ${esc(nm(it.name))}">+</button></div>
          </div></div>`;
      }).join("")}`).join("");
  }

  // the dish's photo over its colour tile; a photo that does not load is
  // removed (the error listener below) and the colour tile shows
  function photoOf(it) {
    const url = it.image && S.photos[it.image];
    return url ? `<img class="photo" src="${esc(url)}" alt="" loading="lazy" decoding="async">` : "";
  }

  function renderCartBar() {
    const n = cartCount();
    $("cartbar").hidden = !n || S.view !== "menu";
    $("cart-count").textContent = n;
    $("cart-total").textContent = money(cartTotal());
    $("cart-go").textContent = t().view;
  }

  // --------------------------------------------------------- editor
  function openItem(id) {
    const item = idx.items[id];
    if (!item || isOut(item) || S.cart.locked) return;
    const chosen = {};
    for (const gid of item.modifier_groups) {
      const g = idx.groups[gid];
      chosen[gid] = g.options.filter((o) => o.default && !S.soldout.has(o.id)).map((o) => o.id).slice(0, g.max_choices);
    }
    S.editor = { item_id: id, chosen, qty: 1, tried: false };
    show("item-sheet");
    renderEditor();
  }

  function missingGroups(ed) {
    const item = idx.items[ed.item_id];
    return item.modifier_groups.map((gid) => idx.groups[gid]).filter((g) => (ed.chosen[g.id] || []).length < g.min_choices);
  }

  function renderEditor() {
    const ed = S.editor, item = idx.items[ed.item_id];
    if (!item) { closeSheets(); return; }
    const out = isOut(item);
    const missing = missingGroups(ed);
    const unit = unitPrice({ item_id: item.id, modifiers: Object.values(ed.chosen).flat() });
    const groups = item.modifier_groups.map((gid) => {
      const g = idx.groups[gid], picked = ed.chosen[gid] || [];
      const rule = g.min_choices >= 1
        ? (g.min_choices === g.max_choices ? t().required(g.min_choices) : t().requiredRange(g.min_choices, g.max_choices))
        : t().optional(g.max_choices);
      return `<div class="group${missing.includes(g) && ed.tried ? " missing" : ""}" data-group="${esc(g.id)}">
        <div class="group-head"><span class="group-name">${esc(nm(g.name))}</span>
        <span class="rule${g.min_choices >= 1 ? " req" : ""}">${esc(rule)}</span></div>
        <div class="opts">${g.options.map((o) => {
          const gone = S.soldout.has(o.id), on = picked.includes(o.id);
          return `<button type="button" class="opt${on ? " on" : ""}" data-opt="${esc(o.id)}" data-g="${esc(g.id)}" aria-pressed="${on}" ${gone ? "disabled" : ""}>
            ${esc(nm(o.name))}${o.price_delta ? `<span class="delta">${o.price_delta > 0 ? "+" : "−"}${money(Math.abs(o.price_delta))}</span>` : ""}${gone ? ` · ${esc(t().soldout)}` : ""}</button>`;
        }).join("")}</div></div>`;
    }).join("");
    const allergens = item.allergens.length
      ? `<p class="allergens">${esc(t().allergens)}${item.allergens.map((a) => esc((ALLERGENS[a] || [a, a])[S.lang === "zh" ? 0 : 1])).join(S.lang === "zh" ? "、" : ", ")}</p>` : "";
    $("item-sheet").innerHTML = `
      <div class="sheet-head"><h2>${esc(nm(item.name))}<div class="sub">${esc(other(item.name))} · ${money(item.price)}</div></h2>
        <button type="button" class="close" data-close aria-label="${esc(t().close)}">×</button></div>
      <div class="sheet-body">
        ${item.description ? `<p class="desc">${esc(nm(item.description))}</p>` : ""}${allergens}
        ${groups}
        <div class="qty-row"><span>${esc(t().qty)}</span><div class="stepper">
          <button type="button" class="step" data-eq="-1" ${ed.qty <= 1 ? "disabled" : ""} aria-label="−">−</button>
          <span class="qty" id="ed-qty">${ed.qty}</span>
          <button type="button" class="step" data-eq="1" ${ed.qty >= 99 ? "disabled" : ""} aria-label="+">+</button></div></div>
      </div>
      <div class="sheet-foot">
        ${missing.length ? `<p class="hint">${esc(t().still(missing.map((g) => nm(g.name)).join(S.lang === "zh" ? "、" : ", ")))}</p>` : ""}
        <button type="button" class="primary" id="ed-add" ${out ? "disabled" : ""}>${esc(out ? t().soldout : t().addTo(money(unit * ed.qty)))}</button>
      </div>`;
  }

  function tapOption(gid, oid) {
    const g = idx.groups[gid], picked = S.editor.chosen[gid] || (S.editor.chosen[gid] = []);
    const at = picked.indexOf(oid);
    if (at >= 0) { if (g.max_choices > 1 || g.min_choices === 0) picked.splice(at, 1); }
    else if (g.max_choices === 1) { picked.splice(0, picked.length, oid); }
    else if (picked.length < g.max_choices) { picked.push(oid); }
    renderEditor();
  }

  function addFromEditor() {
    const ed = S.editor;
    if (missingGroups(ed).length) { ed.tried = true; renderEditor(); return; }
    const item = idx.items[ed.item_id];
    // the order's modifiers in menu order, as the kiosk sends them
    const mods = item.modifier_groups.flatMap((gid) => idx.groups[gid].options.map((o) => o.id)
      .filter((id) => (ed.chosen[gid] || []).includes(id)));
    if (!S.cart.order_id) S.cart.order_id = uuid4();  // the first tap of a new order
    const same = S.cart.lines.find((l) => l.item_id === item.id && l.modifiers.join() === mods.join());
    if (same) same.qty = Math.min(99, same.qty + ed.qty);
    else S.cart.lines.push({ item_id: item.id, qty: ed.qty, modifiers: mods, note: "" });
    S.refusal = null;
    save();
    closeSheets();
    render();
  }

  // ----------------------------------------------------------- cart
  function renderCart() {
    $("cart-title").textContent = t().cart;
    $("note-label").textContent = t().note;
    $("pay-note").textContent = t().pay;
    $("sum-label").textContent = t().total;
    $("sum-total").textContent = money(cartTotal());
    const locked = S.cart.locked;
    const note = $("order-note");
    if (document.activeElement !== note) note.value = S.cart.note || "";
    note.disabled = locked;
    $("loyalty-slot").hidden = !S.phoneRules;
    if (S.phoneRules) {
      $("phone-label").textContent = t().phone;
      $("phone-hint").textContent = t().phoneHint;
      const phone = $("phone");
      if (document.activeElement !== phone) phone.value = S.cart.phone || "";
      phone.disabled = locked;
      phone.classList.toggle("bad", S.phoneError);
      $("phone-error").hidden = !S.phoneError;
      $("phone-error").textContent = S.phoneError ? t().badPhone : "";
    }
    $("cart-lines").innerHTML = S.cart.lines.length ? S.cart.lines.map((l, i) => {
      const item = idx.items[l.item_id] || { name: { zh: l.item_id, en: l.item_id } };
      const gone = !idx.items[l.item_id] || isOut(item) || l.modifiers.some((m) => S.soldout.has(m));
      const mods = l.modifiers.map((m) => (idx.options[m] ? nm(idx.options[m].name) : m)).join(" · ");
      return `<li class="cart-line${gone ? " gone" : ""}" data-line="${i}">
        <div class="main"><div class="name">${esc(nm(item.name))}${gone ? `<span class="soldout-tag">${esc(t().soldout)}</span>` : ""}</div>
          ${mods ? `<div class="mods">${esc(mods)}</div>` : ""}<div class="lt">${money(unitPrice(l) * l.qty)}</div></div>
        <div class="stepper"><button type="button" class="step" data-lq="-1" data-i="${i}" ${locked ? "disabled" : ""} aria-label="−">−</button>
          <span class="qty">${l.qty}</span>
          <button type="button" class="step" data-lq="1" data-i="${i}" ${locked || l.qty >= 99 ? "disabled" : ""} aria-label="+">+</button></div></li>`;
    }).join("") : `<li class="loading">${esc(t().empty)}</li>`;
    const r = S.refusal, box = $("refusal");
    box.hidden = !r;
    if (r) {
      const item = r.detail && r.detail.item_id && idx.items[r.detail.item_id];
      const opt = r.detail && r.detail.modifier && idx.options[r.detail.modifier];
      const what = item || opt ? `<div>${esc(t().itemGone(nm((opt || item).name)))}</div>` : "";
      const gone = S.cart.lines.some((l) => !idx.items[l.item_id] || isOut(idx.items[l.item_id]) || l.modifiers.some((m) => S.soldout.has(m)));
      box.innerHTML = `<strong>${esc(r.message ? r.message[S.lang] : "")}</strong>${r.reason && r.reason.endsWith("unavailable") ? what : ""}
        ${gone ? `<button type="button" id="remove-gone">${esc(t().removeGone)}</button>` : ""}`;
    }
    const btn = $("place-btn");
    btn.textContent = S.sending ? t().sending : `${t().place} · ${money(cartTotal())}`;
    btn.disabled = S.sending || !S.cart.lines.length || !S.hubOnline && !S.cart.maybeSent;
    const sending = $("sending");
    sending.hidden = !S.retryNote;
    sending.textContent = S.retryNote ? (S.retryNote === "network" ? t().network : t().pending) : "";
  }

  function lineQty(i, d) {
    const l = S.cart.lines[i];
    if (!l || S.cart.locked) return;
    l.qty += d;
    if (l.qty <= 0) S.cart.lines.splice(i, 1);
    if (!S.cart.lines.length) { S.cart.order_id = null; closeSheets(); }
    save(); render();
  }

  // --------------------------------------------------------- ordering
  async function placeOrder() {
    if (S.sending || !S.cart.lines.length) return;
    const phone = S.phoneRules && S.cart.phone ? normalisePhone(S.cart.phone) : "";
    if (phone && !S.cart.maybeSent && !validPhone(phone)) {
      // not sent: the diner corrects the number or clears it (the hub checks it again)
      S.phoneError = true; render(); $("phone").focus(); return;
    }
    S.phoneError = false;
    S.sending = true; S.cart.locked = true; S.refusal = null; S.retryNote = false;
    if (!S.cart.order_id) S.cart.order_id = uuid4();
    save(); render();
    // once it may have reached the hub, the order is sent again exactly as it was
    const body = (S.cart.maybeSent && S.cart.body) || JSON.stringify({
      order_id: S.cart.order_id, table, lang: S.lang, menu_version: S.menu ? S.menu.version : "",
      lines: S.cart.lines.map((l) => ({ item_id: l.item_id, qty: l.qty, modifiers: l.modifiers, note: l.note || "" })),
      expected_total: cartTotal(), note: S.cart.note || "", ...(phone ? { phone } : {}),
    });
    S.cart.body = body;
    for (let attempt = 0; ; attempt++) {
      let j;
      try {
        const r = await fetch("/api/orders", { method: "POST", headers: { "Content-Type": "application/json" }, body });
        j = await r.json();
      } catch (e) {
        j = { status: "network" };
      }
      if (j.status === "accepted") { accepted(j.order); return; }
      if (j.status === "rejected" || j.status === "bad_request" || (j.status === "unavailable" && !S.cart.maybeSent)) {
        // a definite no: the hub stored nothing, so the diner may change the order (same id)
        S.refusal = j; S.sending = false; S.cart.locked = false; S.retryNote = false;
        if (j.status === "rejected") { S.cart.maybeSent = false; S.cart.body = null; }
        if (j.status === "unavailable") S.hubOnline = false;
        save(); render(); return;
      }
      // sent, or maybe sent: the same order again until the hub answers (it counts it once)
      S.cart.maybeSent = true; S.retryNote = j.status === "network" ? "network" : "pending";
      save(); render();
      await new Promise((res) => setTimeout(res, Math.min(10000, 1500 * (attempt + 1))));
    }
  }

  function accepted(order) {
    // the number the diner typed stays on their phone, for the wallet (the service keeps only the masked form)
    const phone = S.phoneRules && S.cart.phone ? normalisePhone(S.cart.phone) : "";
    if (phone && validPhone(phone)) order = { ...order, payer_phone: phone };
    S.orders = [order, ...S.orders.filter((o) => o.order_id !== order.order_id)];
    S.cart = { order_id: null, lines: [], note: "", locked: false, maybeSent: false };
    S.sending = false; S.retryNote = false; S.refusal = null; S.view = "status";
    save(); closeSheets(); listen(); render();
    window.scrollTo(0, 0);
  }

  // ---------------------------------------------------------- status
  function renderStatus() {
    $("status").innerHTML = S.orders.slice(0, 5).map((o) => {
      const step = STEP_OF[o.state] ?? 0;
      const cls = o.state === "voided" ? " voided" : (o.state === "ready" || o.state === "completed" ? " done" : "");
      return `<article class="ticket${cls}" data-order="${esc(o.order_id)}" data-state="${esc(o.state)}">
        <div class="ticket-top"><div class="label">${esc(t().number)}</div>
          <div class="number">${esc(o.number)}</div><div class="where">${esc(t().table(o.table || table))}</div></div>
        <div class="state-line">${esc(t().states[o.state] || o.state)}</div>
        ${o.state === "voided" ? "" : `<div class="steps">${t().steps.map((s, i) =>
          `<div class="stepx${i <= step ? " on" : ""}${i === step ? " now" : ""}"><div class="dot">${i < step || o.state === "completed" ? "✓" : i + 1}</div>${esc(s)}</div>`).join("")}</div>`}
        <ul class="ticket-lines">${o.lines.map((l) => `<li><span>${esc(S.lang === "zh" ? l.name_zh : l.name_en)} × ${l.qty}
          ${l.modifiers.length ? `<span class="mods">${esc(l.modifiers.map((m) => m[S.lang]).join(" · "))}</span>` : ""}</span>
          <span>${money(l.line_total)}</span></li>`).join("")}</ul>
        <div class="ticket-sum"><div><span>${esc(t().tax)}</span><span>${money(o.tax)}</span></div>
          <div class="total"><span>${esc(t().total)}</span><span class="hub-total">${money(o.total)}</span></div>
          ${payBlock(o)}</div>
        ${memberLine(o.loyalty)}
      </article>`;
    }).join("") + `<div class="actions"><button type="button" class="primary" id="order-more">${esc(t().orderMore)}</button></div>`;
  }

  // how the order is paid: at the counter, or on the phone through the
  // gateway (restobox/web.py pay); every failure says what to do next
  function payBlock(o) {
    if (o.state === "voided" || o.state === "rejected") return "";
    const due = Math.max(0, o.total - (o.paid || 0));
    if (o.payment === "paid") return `<div class="pay-done" data-paid="1">✓ ${esc(t().paid)} ${money(o.paid || o.total)}</div>`;
    if (o.payment && o.payment !== "unpaid") return `<div class="pay-note">${esc(t().refundedOrder)}</div>`;
    if (!S.phonePay) return `<div class="pay-note">${esc(t().payAt(money(o.total)))}</div>`;
    const p = o.pay, offer = S.payOffer, id = o.order_id;
    const open = p && p.state === "open" && !p.expired;
    let msg = "";
    if (S.checking === id) msg = t().checking;
    else if (p && (p.state === "refund_due" || p.state === "refunded")) msg = t().strayRefund;
    else if (open) msg = t().payOpen;
    else if (p && (p.state === "closed" || p.expired)) msg = t().payExpired;
    if (S.payError && S.payError.order === id) msg = S.payError.message;
    const can = !offer || offer.available;
    if (!can && offer.message) msg = offer.message[S.lang];
    const busy = S.paying === id;
    const label = busy ? t().payStarting : (open ? t().payContinue(money(due)) : t().payPhone(money(due)));
    return `<div class="pay-box" data-pay-state="${esc(p ? (p.expired ? "expired" : p.state) : "none")}">
      ${msg ? `<p class="pay-msg" role="status">${esc(msg)}</p>` : ""}
      ${can ? `<button type="button" class="primary pay-phone" data-pay="${esc(id)}" ${busy ? "disabled" : ""}>${esc(label)}</button>` : ""}
      <p class="pay-note">${esc(t().orCounter(money(due)))}</p></div>`;
  }

  async function startPay(id) {
    if (S.paying) return;
    S.paying = id; S.payError = null; render();
    let j;
    try {
      const o = S.orders.find((x) => x.order_id === id);
      const r = await fetch(`/api/orders/${id}/pay`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(o && o.payer_phone ? { phone: o.payer_phone } : {}) });
      j = await r.json();
    } catch (e) {
      j = { status: "network" };
    }
    S.paying = null;
    if (j.status === "redirect" && j.cashier_url) { save(); location.href = j.cashier_url; return; }
    if (j.status === "checking" || j.status === "paid") { S.checking = id; render(); return; }
    S.payError = { order: id, message: j.message ? j.message[S.lang] : t().network };
    render();
  }

  // back from the wallet: ask at once; the hub's word comes with the order's update
  async function checkReturn(id) {
    S.checking = id; render();
    let j = { status: "unknown" };
    for (let attempt = 0; attempt < 3; attempt++) {
      try { const r = await fetch(`/api/orders/${id}/pay/check`, { method: "POST" }); j = await r.json(); break; }
      catch (e) { await new Promise((res) => setTimeout(res, 1000)); }
    }
    if (j.status === "notpay" || j.status === "closed" || j.status === "none") {
      S.checking = null;
      S.payError = { order: id, message: j.status === "notpay" ? t().notPaid : t().payExpired };
    }
    render();
  }

  // the hub's answer about points: the masked number only
  function memberLine(p) {
    if (!p) return "";
    if (!p.credited) return `<p class="member">${esc(t().pointsOff(p.member))}</p>`;
    return `<p class="member"><strong>${esc(t().points(p.member, p.earned, p.balance))}</strong>${p.redeemed
      ? `<br>${esc(t().pointsUsed(p.redeemed, money(p.discount)))}` : ""}</p>`;
  }

  // ----------------------------------------------------- live updates
  let es = null, poll = null;
  function listen() {
    if (es) es.close();
    const ids = S.orders.slice(0, 10).map((o) => o.order_id).join(",");
    if (window.EventSource) {
      es = new EventSource(`/api/events${ids ? `?orders=${ids}` : ""}`);
      es.addEventListener("soldout", (e) => { S.soldout = new Set(JSON.parse(e.data).items); render(); });
      es.addEventListener("hub", (e) => { S.hubOnline = JSON.parse(e.data).online; render(); });
      es.addEventListener("pay", (e) => { S.payOffer = JSON.parse(e.data); render(); });
      es.addEventListener("photos", () => { if (S.menu) loadMenu(); });
      es.addEventListener("menu", (e) => { const v = JSON.parse(e.data).version; if (v && (!S.menu || S.menu.version !== v)) loadMenu(); });
      es.addEventListener("order", (e) => {
        const o = JSON.parse(e.data);
        S.orders = S.orders.map((x) => (x.order_id === o.order_id ? { ...o, payer_phone: x.payer_phone } : x));
        if (o.payment !== "unpaid" || (o.pay && o.pay.state !== "open")) {
          if (S.checking === o.order_id) S.checking = null;
          if (S.payError && S.payError.order === o.order_id && o.payment === "paid") S.payError = null;
        }
        save(); render();
      });
    } else if (!poll) {
      poll = setInterval(async () => {
        for (const o of S.orders.slice(0, 3)) {
          try { const r = await fetch(`/api/orders/${o.order_id}`); if (r.ok) { const j = await r.json(); S.orders = S.orders.map((x) => (x.order_id === j.order.order_id ? { ...j.order, payer_phone: x.payer_phone } : x)); } } catch (e) { /* next time */ }
        }
        save(); render();
      }, 4000);
    }
  }

  // ----------------------------------------------------------- sheets
  function show(id) { $("scrim").hidden = false; $(id).hidden = false; }
  function closeSheets() {
    $("scrim").hidden = true; $("item-sheet").hidden = true; $("cart-sheet").hidden = true; S.editor = null;
  }

  document.addEventListener("click", (e) => {
    const el = e.target.closest("button, .item");
    if (!el) return;
    if (el.id === "lang-btn") { S.lang = S.lang === "zh" ? "en" : "zh"; save(); render(); return; }
    if (el.id === "cartbar-btn") { show("cart-sheet"); renderCart(); return; }
    if (el.id === "cart-close" || el.hasAttribute("data-close")) { closeSheets(); return; }
    if (el.id === "ed-add") { addFromEditor(); return; }
    if (el.id === "place-btn") { placeOrder(); return; }
    if (el.id === "order-more") { S.view = "menu"; render(); window.scrollTo(0, 0); return; }
    if (el.id === "orders-btn") { S.view = "status"; render(); window.scrollTo(0, 0); return; }
    if (el.dataset.pay) { startPay(el.dataset.pay); return; }
    if (el.id === "remove-gone") {
      S.cart.lines = S.cart.lines.filter((l) => idx.items[l.item_id] && !isOut(idx.items[l.item_id]) && !l.modifiers.some((m) => S.soldout.has(m)));
      S.refusal = null;
      if (!S.cart.lines.length) closeSheets();
      save(); render(); return;
    }
    if (el.dataset.cat) {
      S.cat = el.dataset.cat; render();
      const h = $(`cat-${el.dataset.cat}`);
      if (h) window.scrollTo({ top: h.getBoundingClientRect().top + window.scrollY - $("menu").offsetTop + 4, behavior: "smooth" });
      return;
    }
    if (el.dataset.opt) { tapOption(el.dataset.g, el.dataset.opt); return; }
    if (el.dataset.eq) { S.editor.qty = Math.max(1, Math.min(99, S.editor.qty + Number(el.dataset.eq))); renderEditor(); return; }
    if (el.dataset.lq) { lineQty(Number(el.dataset.i), Number(el.dataset.lq)); return; }
    if (el.dataset.add) { openItem(el.dataset.add); return; }
    if (el.dataset.item) { openItem(el.dataset.item); }
  });
  document.addEventListener("error", (e) => {
    if (e.target instanceof HTMLImageElement && e.target.classList.contains("photo")) e.target.remove();
  }, true);
  $("scrim").addEventListener("click", closeSheets);
  $("order-note").addEventListener("input", (e) => { S.cart.note = e.target.value.slice(0, 200); save(); });
  $("phone").addEventListener("input", (e) => {
    S.cart.phone = e.target.value.slice(0, 20);
    if (S.phoneError && (!S.cart.phone || validPhone(S.cart.phone))) { S.phoneError = false; renderCart(); }
    save();
  });
  $("phone").addEventListener("blur", () => {
    const bad = !!S.cart.phone && !validPhone(S.cart.phone);
    if (bad !== S.phoneError) { S.phoneError = bad; renderCart(); }
  });

  // back from the wallet (the gateway's return address: ?paid=<order id>)
  const back = params.get("paid");
  if (back && S.orders.some((o) => o.order_id === back)) {
    S.view = "status";
    history.replaceState(null, "", location.pathname);
  }
  render();
  loadMenu().then(() => {
    listen();
    if (back && S.orders.some((o) => o.order_id === back)) checkReturn(back);
    if (S.cart.locked && S.cart.maybeSent) { show("cart-sheet"); placeOrder(); }  // a reload while sending
    else if (S.cart.locked) { S.cart.locked = false; save(); render(); }
  });
})();
