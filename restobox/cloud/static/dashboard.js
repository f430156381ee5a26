// The owner's dashboard: every store of the chain on a phone. No framework,
// no CDN: this file, dashboard.html and dashboard.css are all the page is,
// served by `restobox cloud` (restobox/cloud/dashboard.py). Every text is
// built with textContent: a store's name or alert never becomes markup.
"use strict";
(function () {
  const TOKEN_KEY = "restobox.owner_token";
  const LANG_KEY = "restobox.dashboard_lang";
  const TIMEOUT_MS = 5000;

  const T = {
    zh: {
      title: "门店看板", lang: "EN", back: "‹ 全部门店",
      tokenLabel: "请输入老板令牌", tokenHint: "令牌由总部发放（restobox cloud token owner 名字），只保存在这部手机上。",
      open: "进入", badToken: "令牌不正确，或已被吊销。请重新输入。", signout: "换一个令牌",
      updated: (s) => `${s} 秒前更新`, updatedNever: "正在加载……",
      cloudDown: (s) => (s == null ? "连不上总部云端，正在重试……" : `连不上总部云端：下面是 ${s} 秒前的数据，正在重试……`),
      online: "在线", offline: "离线", never: "从未联系",
      contact: (a) => `${a}前联系`, ago: (s) => agoText(s, "zh"),
      sales: "今日销售额", orders: "订单", voided: "作废", open: "未完成", ready: "待取餐",
      storesOnline: "门店在线", alerts: "提醒", noHeartbeat: "还没有收到门店的状态报告",
      ordersN: (n) => `${n} 单`, lag: (b, s) => (b ? `待上传 ${b} 条 · 最早 ${s}前` : "同步正常"),
      lastOrder: (a) => `最新事件 ${a}前`,
      ticket: (avg, p90) => `出餐 平均 ${avg} · P90 ${p90}`,
      offlineRule: (s) => `门店超过 ${s} 秒没有联系即显示离线（看板每 ${REFRESH()} 秒刷新）。`,
      today: "今天", daySales: "当日销售额", tickets: "出餐时间（接单到做好）", avg: "平均", p50: "中位数", p90: "P90",
      max: "最长", count: "单数", hours: "每小时销售额", channels: "各渠道", ordersList: "订单",
      noOrders: "这一天没有订单。", moreOrders: (a, b) => `显示最新 ${a} 单，共 ${b} 单。`,
      hour: (h) => `${h}时`, unknownStore: "没有这家门店。",
      states: { accepted: "已接单", in_progress: "制作中", ready: "待取餐", completed: "已完成", voided: "已作废",
                held: "待付款" },
      channelsN: { kiosk: "自助点餐机", counter: "柜台", qr: "扫码点餐", preorder: "预订", delivery: "外卖", "": "其他" },
      prev: "‹ 前一天", next: "后一天 ›", sev: { critical: "严重", warning: "注意", info: "提示" },
      search: "搜索门店（名称或编号）",
      shownOf: (a, b, q) => (q ? `“${q}”：${b} 家门店，显示 ${a} 家（需要处理的在前）。`
                                : `显示 ${a} / ${b} 家门店（需要处理的在前）。`),
      noMatch: (q) => `没有名称或编号含“${q}”的门店。`,
      more: (n) => `再显示 ${n} 家`,
    },
    en: {
      title: "Stores", lang: "中文", back: "‹ All stores",
      tokenLabel: "Enter the owner's token", tokenHint: "The chain's office gives it (restobox cloud token owner NAME); it stays on this phone only.",
      open: "Open", badToken: "That token was not accepted (wrong or revoked). Please enter it again.", signout: "Use another token",
      updated: (s) => `Updated ${s} s ago`, updatedNever: "Loading…",
      cloudDown: (s) => (s == null ? "The cloud does not answer; trying again…" : `The cloud does not answer: these figures are from ${s} s ago; trying again…`),
      online: "Online", offline: "Offline", never: "never heard from",
      contact: (a) => `heard from ${a} ago`, ago: (s) => agoText(s, "en"),
      sales: "Sales today", orders: "Orders", voided: "Voided", open: "Open", ready: "Ready",
      storesOnline: "Stores online", alerts: "Alerts", noHeartbeat: "no status report from the store yet",
      ordersN: (n) => `${n} order${n === 1 ? "" : "s"}`, lag: (b, s) => (b ? `${b} waiting to sync · oldest ${s} old` : "sync up to date"),
      lastOrder: (a) => `last event ${a} ago`,
      ticket: (avg, p90) => `ticket avg ${avg} · p90 ${p90}`,
      offlineRule: (s) => `A store not heard from for ${s} s shows offline (this page refreshes every ${REFRESH()} s).`,
      today: "today", daySales: "Sales", tickets: "Ticket times (accepted to ready)", avg: "Average", p50: "Median", p90: "p90",
      max: "Longest", count: "Tickets", hours: "Sales by hour", channels: "By channel", ordersList: "Orders",
      noOrders: "No orders this day.", moreOrders: (a, b) => `The newest ${a} of ${b} orders.`,
      hour: (h) => `${String(h).padStart(2, "0")}:00`, unknownStore: "No such store.",
      states: { accepted: "Accepted", in_progress: "Cooking", ready: "Ready", completed: "Done", voided: "Voided",
                held: "Awaiting payment" },
      channelsN: { kiosk: "Kiosk", counter: "Counter", qr: "Table QR", preorder: "Pre-order", delivery: "Delivery", "": "Other" },
      prev: "‹ Day before", next: "Day after ›", sev: { critical: "Critical", warning: "Warning", info: "Info" },
      search: "Search stores (name or id)",
      shownOf: (a, b, q) => (q ? `“${q}”: ${b} store${b === 1 ? "" : "s"}, ${a} shown (those needing attention first).`
                                : `${a} of ${b} stores shown (those needing attention first).`),
      noMatch: (q) => `No store's name or id holds “${q}”.`,
      more: (n) => `Show ${n} more`,
    },
  };

  const $ = (id) => document.getElementById(id);
  let lang = localStorage.getItem(LANG_KEY) || ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en");
  let token = localStorage.getItem(TOKEN_KEY) || "";
  let view = null;        // {kind: "list"} or {kind: "day", store, date}
  let data = null;        // the last answer for the view
  let lastOk = null;      // Date.now() of the last answer
  let failing = false;
  let refreshS = 3;
  let timer = null;
  let seq = 0;            // answers to an older view or request are dropped
  const PAGE = 50;        // stores asked for at a time (a chain may have a thousand)
  let listLimit = PAGE;
  let listQuery = "";
  let searchTimer = null;

  function REFRESH() { return refreshS; }
  function t() { return T[lang]; }

  function agoText(s, l) {
    s = Math.max(0, Math.floor(s));
    if (s < 120) return l === "zh" ? `${s} 秒` : `${s} s`;
    if (s < 7200) return l === "zh" ? `${Math.floor(s / 60)} 分钟` : `${Math.floor(s / 60)} min`;
    if (s < 172800) return l === "zh" ? `${Math.floor(s / 3600)} 小时` : `${Math.floor(s / 3600)} h`;
    return l === "zh" ? `${Math.floor(s / 86400)} 天` : `${Math.floor(s / 86400)} days`;
  }

  function yuan(fen) {
    const neg = fen < 0;
    const s = (Math.abs(fen) / 100).toFixed(2);
    const [i, d] = s.split(".");
    return `${neg ? "-" : ""}¥${i.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${d}`;
  }

  function mmss(s) {
    if (s == null) return "—";
    s = Math.round(s);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else if (k === "width") e.style.width = v;  // CSSOM, not a style attribute: the page's CSP allows no inline style
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) if (kid != null && kid !== false) e.append(kid instanceof Node ? kid : String(kid));
    return e;
  }

  function fill(parent, ...kids) {  // null and false are "nothing here"
    parent.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
  }

  // times in the chain's time zone (the hours of the day are the chain's too), not the phone's
  let clockFmt = null, clockZone = null;
  function chainTime(iso, zone) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return "—";
    if (clockZone !== zone) {
      try {
        clockFmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
      } catch (e) {  // a zone this browser does not know: the phone's own
        clockFmt = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
      }
      clockZone = zone;
    }
    return clockFmt.format(d);
  }

  // ------------------------------------------------------------ routing
  function parseHash() {
    const m = location.hash.match(/^#store\/([^/]+)(?:\/(\d{4}-\d\d-\d\d))?$/);
    return m ? { kind: "day", store: decodeURIComponent(m[1]), date: m[2] || "" } : { kind: "list" };
  }

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  function route() {
    view = parseHash();
    data = null;
    lastOk = null;
    failing = false;
    seq++;
    draw();
    refresh();
  }

  // ------------------------------------------------------------ fetching
  function endpoint() {
    if (view.kind === "list") {
      const q = listQuery ? `&q=${encodeURIComponent(listQuery)}` : "";
      return `/v1/dashboard/stores?limit=${listLimit}${q}`;
    }
    const q = view.date ? `?date=${view.date}` : "";
    return `/v1/dashboard/stores/${encodeURIComponent(view.store)}/day${q}`;
  }

  async function refresh() {
    clearTimeout(timer);
    if (!token) { draw(); return; }
    const mine = ++seq;
    const started = Date.now();
    const ctl = new AbortController();
    const abort = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let status = 0, body = null;
    try {
      const r = await fetch(endpoint(), { headers: { Authorization: `Bearer ${token}` }, cache: "no-store",
                                          signal: ctl.signal });
      status = r.status;
      body = await r.json().catch(() => null);
    } catch (e) {
      status = 0;
    } finally {
      clearTimeout(abort);
    }
    if (mine !== seq) return;  // the view changed meanwhile
    if (status === 401) {
      token = "";
      localStorage.removeItem(TOKEN_KEY);
      showLogin(true);
      return;
    }
    if (status === 200 && body) {
      data = body;
      lastOk = Date.now();
      failing = false;
      if (body.refresh_s) refreshS = body.refresh_s;
    } else if (status === 404 && view.kind === "day") {
      data = { missing: true };
      lastOk = Date.now();
      failing = false;
    } else {
      failing = true;   // no answer, a timeout, or the cloud's 5xx: keep what we have, say so
    }
    draw();
    timer = setTimeout(refresh, Math.max(200, refreshS * 1000 - (Date.now() - started)));
  }

  // ------------------------------------------------------------ drawing
  function showLogin(wrong) {
    $("login").hidden = false;
    $("list").hidden = true;
    $("day").hidden = true;
    $("login-error").hidden = !wrong;
    $("login-error").textContent = t().badToken;
    $("signout").hidden = true;
    $("back").hidden = true;
    $("title").textContent = t().title;
    $("updated").textContent = "";
    $("banner").hidden = true;
    $("token").focus();
  }

  function drawChrome() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.title = lang === "zh" ? "门店看板 · Restobox" : "Stores · Restobox";
    $("lang").textContent = t().lang;
    $("token-label").textContent = t().tokenLabel;
    $("token-hint").textContent = t().tokenHint;
    $("login-go").textContent = t().open;
    $("signout").textContent = t().signout;
    $("back").textContent = t().back;
    $("prev-day").textContent = t().prev;
    $("next-day").textContent = t().next;
    $("store-search").placeholder = t().search;
    $("store-search").setAttribute("aria-label", t().search);
    tick();
  }

  function tick() {
    if (!token) return;
    const age = lastOk == null ? null : Math.floor((Date.now() - lastOk) / 1000);
    $("updated").textContent = age == null ? t().updatedNever : t().updated(age);
    const b = $("banner");
    b.hidden = !failing;
    if (failing) b.textContent = t().cloudDown(age);
    document.body.classList.toggle("stale", failing);
  }

  function draw() {
    drawChrome();
    if (!token) { showLogin(false); return; }
    $("login").hidden = true;
    $("signout").hidden = false;
    $("list").hidden = view.kind !== "list";
    $("day").hidden = view.kind !== "day";
    $("back").hidden = view.kind !== "day";
    if (view.kind === "list") drawList();
    else drawDay();
  }

  function stat(label, value, cls) {
    return el("div", { class: `stat ${cls || ""}` }, el("div", { class: "stat-v" }, value), el("div", { class: "stat-l" }, label));
  }

  function alertChip(a) {
    return el("li", { class: `alert sev-${a.severity}`, "data-key": a.key },
      el("span", { class: "sev" }, t().sev[a.severity] || a.severity), " ", lang === "zh" ? a.zh || a.en : a.en || a.zh);
  }

  function drawList() {
    $("title").textContent = t().title;
    const totals = $("totals"), list = $("stores"), count = $("list-count"), more = $("more-stores");
    if (!data) { fill(totals); fill(list); count.textContent = ""; more.hidden = true; return; }
    const x = data.totals;
    const nAlerts = x.alerts.critical + x.alerts.warning + x.alerts.info;
    fill(totals,
      stat(t().sales, yuan(x.sales), "big"),
      stat(t().orders, String(x.orders)),
      stat(t().storesOnline, `${x.online}/${x.stores}`, x.offline ? "bad" : "good"),
      stat(t().alerts, String(nAlerts), x.alerts.critical ? "bad" : x.alerts.warning ? "warn" : ""),
    );
    fill(list, ...data.stores.map(storeCard));
    list.dataset.now = data.now;  // the cloud's time of this answer
    const shown = data.stores.length, matched = data.matched == null ? shown : data.matched;
    count.textContent = data.q && !matched ? t().noMatch(data.q) : t().shownOf(shown, matched, data.q || "");
    count.dataset.matched = String(matched);
    more.hidden = shown >= matched;
    more.textContent = t().more(Math.min(PAGE, matched - shown));
    $("list-hint").textContent = t().offlineRule(data.offline_after_s);
  }

  function storeCard(s) {
    const d = s.today;
    const contact = s.last_contact_s == null ? t().never : t().contact(t().ago(s.last_contact_s));
    const lag = s.sync.reported_at == null ? t().noHeartbeat : t().lag(s.sync.backlog, t().ago(s.sync.lag_s || 0));
    const tickets = d.tickets.count ? t().ticket(mmss(d.tickets.avg_s), mmss(d.tickets.p90_s)) : null;
    return el("li", { class: `store ${s.online ? "is-online" : "is-offline"}`, "data-store": s.store_id,
                      "data-online": String(s.online) },
      el("button", { type: "button", class: "store-btn", on: { click: () => go(`#store/${encodeURIComponent(s.store_id)}`) } },
        el("div", { class: "store-head" },
          el("span", { class: "dot", "aria-hidden": "true" }),
          el("span", { class: "store-name" }, s.name),
          el("span", { class: "store-sales" }, yuan(d.sales))),
        el("div", { class: "store-sub" },
          el("span", { class: "state" }, s.online ? t().online : t().offline), " · ", el("span", { class: "contact" }, contact),
          el("span", { class: "store-orders" }, t().ordersN(d.orders))),
        el("div", { class: "store-sub2" },
          el("span", { class: `lag${s.sync.backlog ? " lagging" : ""}` }, lag),
          d.open ? el("span", null, ` · ${t().open} ${d.open}`) : null,
          d.voided ? el("span", null, ` · ${t().voided} ${d.voided}`) : null),
        tickets ? el("div", { class: "store-sub2 tickets" }, tickets) : null,
        s.alerts.length ? el("ul", { class: "alerts" }, s.alerts.map(alertChip)) : null));
  }

  function shiftDate(iso, days) {
    const d = new Date(`${iso}T12:00:00Z`);
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }

  function drawDay() {
    const parts = ["day-totals", "day-tickets", "day-hours", "day-channels", "day-orders"];
    if (!data) {
      $("title").textContent = view.store;
      $("day-date").textContent = view.date || "";
      parts.forEach((p) => fill($(p)));
      return;
    }
    if (data.missing) {
      $("title").textContent = view.store;
      parts.forEach((p) => fill($(p)));
      fill($("day-totals"), el("p", { class: "hint" }, t().unknownStore));
      return;
    }
    fill($("title"), el("span", { class: `dot ${data.online ? "on" : "off"}`, "aria-hidden": "true" }), " ", data.name);
    $("day-date").textContent = data.today ? `${data.date} · ${t().today}` : data.date;
    $("next-day").disabled = data.today;
    const x = data.totals, k = data.tickets;
    fill($("day-totals"),
      stat(t().daySales, yuan(x.sales), "big"),
      stat(t().orders, String(x.orders)),
      stat(t().open, String(x.open)),
      stat(t().voided, String(x.voided), x.voided ? "warn" : ""),
    );
    fill($("day-tickets"),
      el("h2", null, t().tickets),
      el("div", { class: "tickets-grid" },
        stat(t().avg, mmss(k.avg_s)), stat(t().p50, mmss(k.p50_s)), stat(t().p90, mmss(k.p90_s)),
        stat(t().max, mmss(k.max_s)), stat(t().count, String(k.count))));
    // hours from the first to the last with an order
    const used = data.by_hour.filter((h) => h.orders);
    const top = Math.max(1, ...data.by_hour.map((h) => h.sales));
    let rows = [];
    if (used.length) {
      const a = used[0].hour, b = used[used.length - 1].hour;
      rows = data.by_hour.filter((h) => h.hour >= a && h.hour <= b).map((h) =>
        el("li", { class: "hour", "data-hour": String(h.hour) },
          el("span", { class: "hour-l" }, t().hour(h.hour)),
          el("span", { class: "bar-track" }, el("span", { class: "bar", width: `${(100 * h.sales / top).toFixed(1)}%` })),
          el("span", { class: "hour-v" }, h.orders ? `${yuan(h.sales)} · ${h.orders}` : "—")));
    }
    fill($("day-hours"), el("h2", null, t().hours),
      rows.length ? el("ul", { class: "hours" }, rows) : el("p", { class: "hint" }, t().noOrders));
    fill($("day-channels"), el("h2", null, t().channels),
      el("ul", { class: "rows" }, data.by_channel.map((c) => el("li", { class: "row", "data-channel": c.channel },
        el("span", { class: "row-main" }, t().channelsN[c.channel] || c.channel),
        el("span", { class: "row-mid" }, `${t().ordersN(c.orders)} · P90 ${mmss(c.tickets.p90_s)}`),
        el("span", { class: "row-end" }, yuan(c.sales))))));
    const orders = data.orders.map((o) => el("li", { class: `row order st-${o.state}`, "data-order": o.order_id },
      el("span", { class: "row-main num" }, o.number != null ? `#${o.number}` : "#?"),
      el("span", { class: "row-mid" },
        `${chainTime(o.accepted_at, data.timezone)} · ${t().channelsN[o.channel] || o.channel} · ${t().states[o.state] || o.state}`,
        o.ticket_s != null ? el("span", { class: "ticket" }, ` · ${mmss(o.ticket_s)}`) : null),
      el("span", { class: "row-end" }, yuan(o.total))));
    fill($("day-orders"), el("h2", null, `${t().ordersList} (${data.orders_total})`),
      orders.length ? el("ul", { class: "rows" }, orders) : el("p", { class: "hint" }, t().noOrders),
      data.orders_total > data.orders.length ? el("p", { class: "hint" }, t().moreOrders(data.orders.length, data.orders_total)) : null);
  }

  // ------------------------------------------------------------ events
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, lang);
    draw();
  });
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (!v) return;
    token = v;
    localStorage.setItem(TOKEN_KEY, v);
    $("token").value = "";
    route();
  });
  $("signout").addEventListener("click", () => {
    token = "";
    localStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    seq++;
    showLogin(false);
  });
  $("back").addEventListener("click", () => go(""));
  $("store-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const q = $("store-search").value.trim().slice(0, 64);
      if (q === listQuery) return;
      listQuery = q;
      listLimit = PAGE;
      refresh();
    }, 300);
  });
  $("more-stores").addEventListener("click", () => { listLimit += PAGE; refresh(); });
  $("prev-day").addEventListener("click", () => {
    if (data && data.date) go(`#store/${encodeURIComponent(view.store)}/${shiftDate(data.date, -1)}`);
  });
  $("next-day").addEventListener("click", () => {
    if (data && data.date && !data.today) go(`#store/${encodeURIComponent(view.store)}/${shiftDate(data.date, 1)}`);
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => { if (!document.hidden && token) refresh(); });
  setInterval(tick, 1000);
  route();
})();
