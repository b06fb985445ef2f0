"use strict";
// The achievements engine's web console: a single page with hash routes,
// no framework and no build step. It talks to the server's own API with the
// management key, which it keeps in sessionStorage (this tab only).
(() => {
  const KEY = "achievements.managementKey";
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const notice = document.getElementById("notice");

  // ---------------------------------------------------------------------
  // DOM helpers.
  // ---------------------------------------------------------------------

  /** Builds an element: attributes (on* are listeners) and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  function when(iso) {
    if (!iso) return "—";
    return h("time", { datetime: iso }, iso.replace("T", " ").replace("Z", " UTC"));
  }

  /** An instant as wall-clock time in an IANA zone, for people. */
  function inZone(iso, tz) {
    try {
      const text = new Intl.DateTimeFormat("en-GB", {
        timeZone: tz, weekday: "short", day: "numeric", month: "short", year: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      }).format(new Date(iso));
      return `${text} ${tz}`;
    } catch (_) {
      return iso;
    }
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  let noticeKeep = 0;
  /** A message that survives the next navigation. */
  function notify(text) {
    notice.textContent = text;
    noticeKeep = 1;
  }

  // ---------------------------------------------------------------------
  // The API.
  // ---------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /** A failure found before asking the server, in the API's error shape. */
  function localFailure(name, message) {
    return new ApiFailure(400, {
      message, errors: [{ title: "Invalid field", details: message, source: { pointer: "/" + name } }],
    });
  }

  const key = () => sessionStorage.getItem(KEY) || "";

  function signedOut(message) {
    sessionStorage.removeItem(KEY);
    if (message) notify(message);
    location.hash = "#/signin";
  }

  // Numbers are sent as the text typed (exact decimals, never through a
  // float); anything that is not a number is sent as a string so that the
  // server names the field in its answer.
  const NUMERIC = new Set(["target", "allowedLatenessSeconds"]);
  const NUMBER = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

  function encode(body) {
    const raw = [];
    const copy = {};
    for (const [k, v] of Object.entries(body)) {
      if (NUMERIC.has(k) && typeof v === "string" && NUMBER.test(v)) {
        copy[k] = `\u0000${raw.length}`;
        raw.push(v);
      } else {
        copy[k] = v;
      }
    }
    return JSON.stringify(copy).replace(/"\\u0000(\d+)"/g, (_, i) => raw[Number(i)]);
  }

  async function api(method, path, body, opts = {}) {
    const headers = {
      Authorization: "ManagementKey-v1 " + (opts.key !== undefined ? opts.key : key()),
      Accept: "application/json",
    };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = encode(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiFailure(0, { message: `The server cannot be reached (${e.message}).` });
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { message: text }; }
    }
    if (res.status === 401 && opts.key === undefined) {
      signedOut("The server refused the management key; sign in again.");
    }
    if (!res.ok) throw new ApiFailure(res.status, data);
    return data;
  }

  /** Every item of a paged list (`{hasMore, data}`). */
  async function all(path, pageSize = 50) {
    const out = [];
    const sep = path.includes("?") ? "&" : "?";
    for (let skip = 0; ; skip += pageSize) {
      const page = await api("GET", `${path}${sep}pageSize=${pageSize}&skip=${skip}`);
      out.push(...page.data);
      if (!page.hasMore || page.data.length === 0) return out;
    }
  }

  const appPath = (app) => `/v1/applications/${app}`;
  const campaignPath = (app, c) => `${appPath(app)}/campaigns/${c}`;

  // ---------------------------------------------------------------------
  // Forms: fields with labels, hints and the API's errors next to them.
  // ---------------------------------------------------------------------

  /** A labelled field around `input` (which has a name); ids from `prefix`. */
  function field(prefix, label, input, opts = {}) {
    input.id = `${prefix}-${input.name}`;
    const described = [];
    const hint = opts.hint ? h("p", { class: "hint", id: `${input.id}-hint` }, opts.hint) : null;
    if (hint) described.push(hint.id);
    if (opts.describedBy) described.push(opts.describedBy);
    input.dataset.describedBy = described.join(" ");
    if (described.length) input.setAttribute("aria-describedby", input.dataset.describedBy);
    const error = h("p", { class: "field-error", id: `${input.id}-error`, hidden: true });
    const lab = h("label", { for: input.id }, label);
    const check = input.type === "checkbox";
    const cls = "field" + (opts.wide ? " wide" : "") + (check ? " check" : "");
    return check
      ? h("div", { class: cls }, input, lab, hint, error, opts.extra)
      : h("div", { class: cls }, lab, input, hint, opts.extra, error);
  }

  function formError(id) {
    return h("div", { class: "form-error", id, role: "alert", tabindex: -1 });
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      if (el.dataset.describedBy) el.setAttribute("aria-describedby", el.dataset.describedBy);
      else el.removeAttribute("aria-describedby");
    }
    for (const p of form.querySelectorAll(".field-error")) {
      p.textContent = "";
      p.hidden = true;
    }
    form.querySelector(".form-error").textContent = "";
  }

  /** Shows an API error: each item next to the field its pointer names,
   *  the rest (and the message, when no field matched) above the form. */
  function showErrors(form, err) {
    clearErrors(form);
    const items = Array.isArray(err.body.errors) ? err.body.errors : [];
    const unplaced = [];
    let first = null;
    for (const item of items) {
      const pointer = item.source && item.source.pointer;
      const name = pointer ? pointer.split("/")[1].replace(/~1/g, "/").replace(/~0/g, "~") : "";
      const input = name ? form.elements.namedItem(name) : null;
      const text = item.details || item.title || err.message;
      if (input && input.id) {
        const p = document.getElementById(`${input.id}-error`);
        p.textContent = p.textContent ? `${p.textContent} ${text}` : text;
        p.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", [input.dataset.describedBy, p.id].filter(Boolean).join(" "));
        first = first || input;
      } else {
        unplaced.push(text);
      }
    }
    const top = form.querySelector(".form-error");
    if (!first || unplaced.length) {
      const extra = unplaced.filter((t) => t !== err.message);
      top.textContent = [err.message, ...extra].join(" — ");
    }
    (first || top).focus();
  }

  /** A field's error goes once the field is edited. */
  function clearFieldError(ev) {
    const input = ev.target;
    if (input.getAttribute("aria-invalid") !== "true") return;
    input.removeAttribute("aria-invalid");
    if (input.dataset.describedBy) input.setAttribute("aria-describedby", input.dataset.describedBy);
    else input.removeAttribute("aria-describedby");
    const p = document.getElementById(`${input.id}-error`);
    if (p) { p.textContent = ""; p.hidden = true; }
  }

  /** Runs `action` on submit with the button disabled; errors go to the form. */
  function onSubmit(form, action) {
    form.addEventListener("input", clearFieldError);
    form.addEventListener("change", clearFieldError);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("[type=submit]");
      button.disabled = true;
      clearErrors(form);
      try {
        await action();
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        if (e.status !== 401) showErrors(form, e);
      } finally {
        button.disabled = false;
      }
    });
  }

  const text = (name, attrs = {}) => h("input", { type: "text", name, ...attrs });

  function select(name, options, value) {
    return h("select", { name },
      options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  }

  // ---------------------------------------------------------------------
  // Pages.
  // ---------------------------------------------------------------------

  function crumbs(items) {
    return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("ol", {}, items.map(([label, href], i) =>
        h("li", {}, i < items.length - 1 ? h("a", { href }, label) : h("span", { "aria-current": "page" }, label)))));
  }

  const apps = new Map();
  async function loadApp(id) {
    const app = await api("GET", appPath(id));
    apps.set(String(id), app);
    return app;
  }

  function signInPage(view) {
    const input = h("input", { type: "password", name: "key", autocomplete: "off", spellcheck: "false" });
    const form = h("form", { class: "card signin", id: "signin-form", novalidate: true },
      formError("signin-error"),
      field("signin", "Management key", input, {
        hint: "Kept in this browser tab only and sent as “Authorization: ManagementKey-v1 …”.",
      }),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "signin-submit" }, "Sign in")));
    onSubmit(form, async () => {
      const k = input.value.trim();
      if (!k) throw localFailure("key", "Enter the management key.");
      try {
        await api("GET", "/v1/applications?pageSize=1", undefined, { key: k });
      } catch (e) {
        if (e.status === 401) throw localFailure("key", "The server refused this key.");
        throw e;
      }
      sessionStorage.setItem(KEY, k);
      location.hash = "#/apps";
    });
    view.render("Sign in", h("h1", { tabindex: -1 }, "Sign in"), form);
    input.focus();
  }

  async function appsPage(view) {
    const list = await all("/v1/applications");
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    const table = list.length
      ? h("table", { id: "apps-table" },
        h("thead", {}, h("tr", {}, ["Name", "Id", "Time zone", "Description", "Created"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, list.map((a) => h("tr", { "data-id": a.id },
          h("td", {}, h("a", { href: `#/apps/${a.id}` }, a.name)), h("td", { class: "num" }, a.id),
          h("td", {}, a.timezone), h("td", {}, a.description), h("td", {}, when(a.created))))))
      : h("p", { class: "empty" }, "No applications yet.");
    const form = h("form", { class: "card", id: "app-form", novalidate: true },
      h("h2", {}, "New application"), formError("app-form-error"),
      h("div", { class: "grid" },
        field("app", "Name", text("name", { required: true })),
        field("app", "Time zone", text("timezone", { value: "UTC", list: "zones", autocomplete: "off" }), {
          hint: "IANA name, such as Europe/Berlin. Periods are calendar days and months here.",
          extra: h("datalist", { id: "zones" }, ["UTC", ...zones].map((z) => h("option", { value: z }))),
        }),
        field("app", "Description", h("textarea", { name: "description" }), { wide: true })),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "app-submit" }, "Create application")));
    onSubmit(form, async () => {
      const f = form.elements;
      const body = { name: f.name.value.trim(), timezone: f.timezone.value.trim() || "UTC" };
      if (f.description.value.trim()) body.description = f.description.value.trim();
      const app = await api("POST", "/v1/applications", body);
      notify(`Application “${app.name}” created.`);
      location.hash = `#/apps/${app.id}`;
    });
    view.render("Applications", h("h1", { tabindex: -1 }, "Applications"), table, form);
  }

  async function appPage(view, appId) {
    const [app, campaigns] = await Promise.all([loadApp(appId), all(`${appPath(appId)}/campaigns`)]);
    const table = campaigns.length
      ? h("table", { id: "campaigns-table" },
        h("thead", {}, h("tr", {}, ["Name", "Id", "State", "Starts", "Ends"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, campaigns.map((c) => h("tr", { "data-id": c.id },
          h("td", {}, h("a", { href: `#/apps/${appId}/campaigns/${c.id}` }, c.name)), h("td", { class: "num" }, c.id),
          h("td", {}, c.state), h("td", {}, when(c.startTime)), h("td", {}, when(c.endTime))))))
      : h("p", { class: "empty" }, "No campaigns yet.");
    const form = h("form", { class: "card", id: "campaign-form", novalidate: true },
      h("h2", {}, "New campaign"), formError("campaign-form-error"),
      h("div", { class: "grid" },
        field("campaign", "Name", text("name")),
        field("campaign", "State", select("state", [["enabled", "enabled"], ["disabled", "disabled"]], "enabled")),
        field("campaign", "Start time", text("startTime", { placeholder: "2027-01-01T00:00:00Z" }), { hint: "RFC 3339; empty: no start." }),
        field("campaign", "End time", text("endTime"), { hint: "RFC 3339; empty: no end." })),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "campaign-submit" }, "Create campaign")));
    onSubmit(form, async () => {
      const f = form.elements;
      const body = { name: f.name.value.trim(), state: f.state.value };
      if (f.startTime.value.trim()) body.startTime = f.startTime.value.trim();
      if (f.endTime.value.trim()) body.endTime = f.endTime.value.trim();
      const c = await api("POST", `${appPath(appId)}/campaigns`, body);
      notify(`Campaign “${c.name}” created.`);
      location.hash = `#/apps/${appId}/campaigns/${c.id}`;
    });
    view.render(app.name,
      crumbs([["Applications", "#/apps"], [app.name]]),
      h("h1", { tabindex: -1 }, app.name),
      h("p", {}, `Application ${app.id} · time zone ${app.timezone}`, app.description ? ` · ${app.description}` : ""),
      h("p", { class: "actions" },
        h("a", { class: "button secondary", id: "link-customers", href: `#/apps/${appId}/customers` }, "Customer lookup"),
        h("a", { class: "button secondary", id: "link-feed", href: `#/apps/${appId}/feed` }, "Live feed")),
      h("h2", {}, "Campaigns"), table, form);
  }

  async function campaignPage(view, appId, campaignId) {
    const [app, campaign, list] = await Promise.all([
      loadApp(appId), api("GET", campaignPath(appId, campaignId)),
      all(`${campaignPath(appId, campaignId)}/achievements`)]);
    const base = `#/apps/${appId}/campaigns/${campaignId}`;
    const remove = async (a) => {
      const ok = await confirmDialog(`Delete achievement “${a.title}” (${a.name})? Its customers' progress goes with it.`);
      if (!ok) return;
      try {
        await api("DELETE", `${campaignPath(appId, campaignId)}/achievements/${a.id}`);
        notify(`Achievement “${a.title}” deleted.`);
        route();
      } catch (e) {
        if (e.status !== 401) notify(`Not deleted: ${e.message}`);
      }
    };
    const table = list.length
      ? h("table", { id: "achievements-table" },
        h("thead", {}, h("tr", {}, ["Title", "Name", "Target", "Period", "Recurrence", "Activation", "Status", "Has progress", ""]
          .map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, list.map((a) => h("tr", { "data-id": a.id },
          h("td", {}, h("a", { href: `${base}/achievements/${a.id}` }, a.title)), h("td", {}, h("code", {}, a.name)),
          h("td", { class: "num" }, a.target), h("td", {}, a.period || "—"), h("td", {}, a.recurrencePolicy),
          h("td", {}, a.activationPolicy), h("td", {}, a.status), h("td", {}, a.hasProgress ? "yes" : "no"),
          h("td", { class: "row-actions" },
            h("a", { href: `${base}/achievements/${a.id}`, "aria-label": `Edit ${a.title}` }, "Edit"),
            h("button", { type: "button", class: "link delete", "aria-label": `Delete ${a.title}`, onclick: () => remove(a) }, "Delete"))))))
      : h("p", { class: "empty" }, "No achievements yet.");
    view.render(campaign.name,
      crumbs([["Applications", "#/apps"], [app.name, `#/apps/${appId}`], [campaign.name]]),
      h("h1", { tabindex: -1 }, `Campaign: ${campaign.name}`),
      h("p", {}, `State ${campaign.state}`, campaign.startTime ? ` · from ${campaign.startTime}` : "",
        campaign.endTime ? ` · until ${campaign.endTime}` : ""),
      h("p", { class: "actions" }, h("a", { class: "button", id: "new-achievement", href: `${base}/new` }, "New achievement")),
      h("h2", {}, "Achievements"), table);
  }

  function confirmDialog(message) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = message;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      document.getElementById("confirm-cancel").focus();
    });
  }

  // The achievement form: every field of CreateAchievement.
  const RECURRENCE = [["no_recurrence", "no_recurrence (once)"], ["on_expiration", "on_expiration"], ["on_completion", "on_completion"]];
  const ACTIVATION = [["user_action", "user_action (first progress starts it)"], ["fixed_schedule", "fixed_schedule"]];

  /** The form's values, as text (numbers and dates as typed; "" = unset). */
  function achievementValues(form) {
    const f = form.elements;
    const v = {};
    for (const name of ["name", "title", "description", "target", "period", "recurrencePolicy",
      "activationPolicy", "fixedStartDate", "endDate", "allowedLatenessSeconds"]) {
      v[name] = f[name].value.trim();
    }
    v.allowRollbackAfterCompletion = f.allowRollbackAfterCompletion.checked;
    v.endProgressOnTarget = f.endProgressOnTarget.checked;
    return v;
  }

  const NULLABLE = new Set(["period", "fixedStartDate", "endDate", "allowedLatenessSeconds"]);

  async function achievementPage(view, appId, campaignId, achievementId) {
    const editing = achievementId !== undefined;
    const [app, campaign, current] = await Promise.all([
      loadApp(appId), api("GET", campaignPath(appId, campaignId)),
      editing ? api("GET", `${campaignPath(appId, campaignId)}/achievements/${achievementId}`) : null]);
    const a = current || {};
    const val = (x) => (x === undefined || x === null ? "" : String(x));
    const preview = h("output", { class: "preview", id: "period-preview", for: "ach-period", "aria-live": "polite" });
    const form = h("form", { class: "card", id: "achievement-form", novalidate: true },
      formError("achievement-form-error"),
      h("div", { class: "grid" },
        field("ach", "Name", text("name", { value: val(a.name), autocomplete: "off" }), { hint: "API name: a letter, then letters, digits or _." }),
        field("ach", "Title", text("title", { value: val(a.title) })),
        field("ach", "Description", h("textarea", { name: "description" }, val(a.description)), { wide: true }),
        field("ach", "Target", text("target", { value: val(a.target), inputmode: "decimal" }), { hint: "Progress needed, greater than zero." }),
        field("ach", "Period", text("period", { value: val(a.period), autocomplete: "off", spellcheck: "false" }), {
          hint: "Amount and unit (s m h D W M Y), optional _D/_U rounding: 1D, 1.5h, 1W_U, 3M_U. Empty: none.",
          describedBy: "period-preview", extra: preview,
        }),
        field("ach", "Recurrence policy", select("recurrencePolicy", RECURRENCE, a.recurrencePolicy || "no_recurrence")),
        field("ach", "Activation policy", select("activationPolicy", ACTIVATION, a.activationPolicy || "user_action")),
        field("ach", "Fixed start date", text("fixedStartDate", { value: val(a.fixedStartDate), placeholder: "2027-01-01T00:00:00+01:00" }),
          { hint: "RFC 3339; only with fixed_schedule." }),
        field("ach", "End date", text("endDate", { value: val(a.endDate) }), { hint: "RFC 3339; empty: no end." }),
        field("ach", "Allowed lateness (seconds)", text("allowedLatenessSeconds", { value: val(a.allowedLatenessSeconds), inputmode: "numeric" }),
          { hint: "How long an ended period still takes late events. Empty: no limit." }),
        field("ach", "Allow rollback after completion", h("input", { type: "checkbox", name: "allowRollbackAfterCompletion", checked: !!a.allowRollbackAfterCompletion })),
        field("ach", "End progress on target", h("input", { type: "checkbox", name: "endProgressOnTarget", checked: !!a.endProgressOnTarget }))),
      h("div", { class: "actions" },
        h("button", { type: "submit", id: "achievement-submit" }, editing ? "Save changes" : "Create achievement"),
        h("a", { href: `#/apps/${appId}/campaigns/${campaignId}` }, "Cancel")));

    // The live preview of the period, in the application's zone.
    const periodInput = form.elements.period;
    let previewSeq = 0;
    let timer = null;
    const updatePreview = async () => {
      const period = periodInput.value.trim();
      const seq = ++previewSeq;
      preview.classList.remove("bad");
      if (!period) {
        preview.textContent = "No period: an iteration ends only at the end date, if any.";
        return;
      }
      try {
        const q = new URLSearchParams({ period, timezone: app.timezone });
        const p = await api("GET", `/v1/period_preview?${q}`);
        if (seq !== previewSeq) return;
        preview.textContent = `Started now, this iteration would end at ${inZone(p.endDate, app.timezone)} (${p.endDate}).`;
      } catch (e) {
        if (seq !== previewSeq) return;
        preview.classList.add("bad");
        preview.textContent = `Period: ${e.message}`;
      }
    };
    periodInput.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(updatePreview, 300);
    });
    view.onLeave(() => clearTimeout(timer));
    updatePreview();

    const initial = achievementValues(form);
    onSubmit(form, async () => {
      const v = achievementValues(form);
      const path = `${campaignPath(appId, campaignId)}/achievements`;
      if (!editing) {
        const body = {};
        for (const [k, x] of Object.entries(v)) {
          if (x !== "" || !NULLABLE.has(k)) body[k] = x;
        }
        const created = await api("POST", path, body);
        notify(`Achievement “${created.title}” created.`);
      } else {
        const patch = {};
        for (const [k, x] of Object.entries(v)) {
          if (x !== initial[k]) patch[k] = x === "" && NULLABLE.has(k) ? null : x;
        }
        if (!Object.keys(patch).length) {
          notify("Nothing changed.");
          return;
        }
        const saved = await api("PUT", `${path}/${achievementId}`, patch);
        notify(`Achievement “${saved.title}” saved.`);
      }
      location.hash = `#/apps/${appId}/campaigns/${campaignId}`;
    });
    const title = editing ? `Edit “${a.title}”` : "New achievement";
    view.render(title,
      crumbs([["Applications", "#/apps"], [app.name, `#/apps/${appId}`], [campaign.name, `#/apps/${appId}/campaigns/${campaignId}`], [title]]),
      h("h1", { tabindex: -1 }, title),
      editing ? h("p", { class: "hint" }, "Only title, description and allowed lateness can change while the campaign runs or once customers have progress; the server says so if a change is refused.") : null,
      h("p", {}, `Dates and periods are computed in the application's time zone, ${app.timezone}.`),
      form);
  }

  async function customersPage(view, appId, customer) {
    const app = await loadApp(appId);
    const input = text("integrationId", { value: customer || "", autocomplete: "off", spellcheck: "false" });
    const form = h("form", { class: "card", id: "customer-form", role: "search", novalidate: true },
      formError("customer-form-error"),
      field("customer", "Customer integration id", input),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "customer-submit" }, "Look up")));
    const results = h("div", { id: "customer-results", "aria-live": "polite" });
    onSubmit(form, async () => {
      const id = input.value.trim();
      if (!id) throw localFailure("integrationId", "Enter a customer's integration id.");
      const target = `#/apps/${appId}/customers/${encodeURIComponent(id)}`;
      if (location.hash === target) route();
      else location.hash = target;
    });
    view.render(`Customers of ${app.name}`,
      crumbs([["Applications", "#/apps"], [app.name, `#/apps/${appId}`], ["Customer lookup"]]),
      h("h1", { tabindex: -1 }, "Customer lookup"), form, results);
    if (!customer) return;
    const enc = encodeURIComponent(customer);
    let rows;
    try {
      rows = await all(`${appPath(appId)}/achievement_progress/${enc}`);
    } catch (e) {
      if (e instanceof ApiFailure && e.status !== 401) showErrors(form, e);
      return;
    }
    const histories = await Promise.all(rows.map((r) =>
      api("GET", `/v1/customer_profiles/${enc}/achievements/${r.achievementId}?pageSize=1000`)
        .then((x) => x.data, (e) => e)));
    if (!view.live()) return;
    const sections = [];
    let quiet = 0;
    rows.forEach((r, i) => {
      const history = histories[i];
      const started = r.status !== "not_started" || (Array.isArray(history) && history.length);
      if (!started) { quiet += 1; return; }
      sections.push(h("section", { class: "card", "data-achievement-id": r.achievementId, "aria-labelledby": `ach-${r.achievementId}-title` },
        h("h3", { id: `ach-${r.achievementId}-title` }, `${r.title} `, h("code", {}, r.name)),
        h("p", {}, "Current: ",
          h("span", { class: "progress", id: `progress-${r.achievementId}` }, `${r.progress} / ${r.target}`), " ",
          h("span", { class: `status ${r.status}` }, r.status),
          r.startDate ? [" · from ", when(r.startDate)] : "", r.endDate ? [" to ", when(r.endDate)] : "",
          r.completionDate ? [" · completed ", when(r.completionDate)] : ""),
        Array.isArray(history)
          ? history.length
            ? h("table", { class: "history" },
              h("caption", { class: "hint" }, "Iterations, newest first"),
              h("thead", {}, h("tr", {}, ["Tracker", "Status", "Progress", "Start", "End", "Completed"].map((c) => h("th", { scope: "col" }, c)))),
              h("tbody", {}, history.map((it) => h("tr", {},
                h("td", { class: "num" }, it.progressTrackerId), h("td", {}, h("span", { class: `status ${it.status}` }, it.status)),
                h("td", { class: "num" }, it.progress), h("td", {}, when(it.startDate)), h("td", {}, when(it.endDate)),
                h("td", {}, when(it.completionDate))))))
            : h("p", { class: "empty" }, "No iterations kept.")
          : h("p", { class: "form-error" }, `History unavailable: ${history.message}`)));
    });
    results.replaceChildren(...[
      h("h2", {}, `Customer ${customer}`),
      sections.length ? sections : h("p", { class: "empty", id: "customer-empty" }, "No progress in any achievement of this application."),
      quiet && sections.length ? h("p", { class: "hint" }, `${quiet} other achievement(s) without progress.`) : null,
    ].flat().filter(Boolean));
  }

  // ---------------------------------------------------------------------
  // The live feed: SSE read with fetch (EventSource cannot send the
  // Authorization header), resumed with Last-Event-ID.
  // ---------------------------------------------------------------------

  /** Reads an event stream; calls `onEvent({id, event, data})` per event. */
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let ev = { data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (let line of lines) {
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (ev.data.length || ev.id) onEvent({ id: ev.id, event: ev.event || "message", data: ev.data.join("\n") });
          ev = { data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const name = i < 0 ? line : line.slice(0, i);
        let v = i < 0 ? "" : line.slice(i + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (name === "data") ev.data.push(v);
        else if (name === "event") ev.event = v;
        else if (name === "id") ev.id = v;
      }
    }
  }

  const FEED_KEEP = 200;

  async function feedPage(view, appId) {
    const app = await loadApp(appId);
    const status = h("p", { class: "conn", id: "feed-status", role: "status" }, "Connecting…");
    const list = h("ol", { class: "feed", id: "feed", "aria-live": "polite", "aria-relevant": "additions", reversed: true });
    view.render(`Live feed of ${app.name}`,
      crumbs([["Applications", "#/apps"], [app.name, `#/apps/${appId}`], ["Live feed"]]),
      h("h1", { tabindex: -1 }, "Live feed"),
      h("p", {}, "What happens to customers' achievements, newest first, as it happens (from the oldest entry kept)."),
      status, list);
    const add = (ev) => {
      let e;
      try { e = JSON.parse(ev.data); } catch (_) { return; }
      const item = h("li", { "data-type": e.type || ev.event, "data-id": e.id },
        h("span", { class: "type" }, e.type || ev.event), " — ",
        h("strong", {}, e.achievementName), " for customer ", h("code", {}, e.integrationId),
        `: ${e.progress} / ${e.target}`,
        h("div", { class: "meta" }, when(e.created), ` · tracker ${e.progressTrackerId}`,
          e.eventId ? ` · event ${e.eventId}` : ""));
      list.prepend(item);
      while (list.children.length > FEED_KEEP) list.lastElementChild.remove();
    };
    const stop = new AbortController();
    view.onLeave(() => stop.abort());
    let last = null;
    let delay = 1000;
    while (!stop.signal.aborted) {
      try {
        const headers = { Authorization: `ManagementKey-v1 ${key()}`, Accept: "text/event-stream" };
        if (last) headers["Last-Event-ID"] = last;
        const res = await fetch(`${appPath(appId)}/achievement_events`, { headers, signal: stop.signal, cache: "no-store" });
        if (res.status === 401) { signedOut("The server refused the management key; sign in again."); return; }
        if (res.status === 410) {
          last = null;
          list.replaceChildren();
          status.textContent = "The feed no longer keeps the last entry shown; starting again from the oldest kept.";
          continue;
        }
        if (!res.ok) {
          const body = await res.json().catch(() => null);
          throw new Error((body && body.message) || `HTTP ${res.status}`);
        }
        status.textContent = "Connected: new entries appear as they happen.";
        delay = 1000;
        await readEvents(res.body, (ev) => {
          if (ev.id) last = ev.id;
          if (ev.data) add(ev);
        });
        if (stop.signal.aborted) return;
        status.textContent = "The server closed the stream; reconnecting…";
      } catch (e) {
        if (stop.signal.aborted) return;
        status.textContent = `Disconnected (${e.message}); reconnecting in ${delay / 1000} s…`;
      }
      await sleep(delay, stop.signal);
      delay = Math.min(delay * 2, 30000);
    }
  }

  // ---------------------------------------------------------------------
  // Routing.
  // ---------------------------------------------------------------------

  const ROUTES = [
    [/^#\/signin$/, signInPage],
    [/^#\/apps$/, appsPage],
    [/^#\/apps\/(\d+)$/, appPage],
    [/^#\/apps\/(\d+)\/campaigns\/(\d+)$/, campaignPage],
    [/^#\/apps\/(\d+)\/campaigns\/(\d+)\/new$/, (v, a, c) => achievementPage(v, a, c)],
    [/^#\/apps\/(\d+)\/campaigns\/(\d+)\/achievements\/(\d+)$/, achievementPage],
    [/^#\/apps\/(\d+)\/customers(?:\/(.+))?$/, (v, a, c) => customersPage(v, a, c && decodeURIComponent(c))],
    [/^#\/apps\/(\d+)\/feed$/, feedPage],
  ];

  let current = null;

  /** One rendering of one page: stale ones render nothing. */
  function newView() {
    if (current) current.leave();
    const leaving = [];
    const view = {
      live: () => current === view,
      onLeave: (fn) => leaving.push(fn),
      leave: () => leaving.splice(0).forEach((fn) => fn()),
      render: (title, ...nodes) => {
        if (!view.live()) return;
        document.title = `${title} · Achievements console`;
        main.replaceChildren(...nodes.flat().filter(Boolean));
        const heading = main.querySelector("h1");
        if (heading && document.activeElement === document.body) heading.focus();
      },
    };
    current = view;
    return view;
  }

  async function route() {
    const hash = location.hash;
    if (!key() && hash !== "#/signin") { location.replace("#/signin"); return; }
    if (key() && (hash === "" || hash === "#" || hash === "#/" || hash === "#/signin")) { location.replace("#/apps"); return; }
    if (noticeKeep > 0) noticeKeep -= 1; else notice.textContent = "";
    nav.hidden = !key();
    const view = newView();
    for (const [re, page] of ROUTES) {
      const m = hash.match(re);
      if (!m) continue;
      try {
        await page(view, ...m.slice(1));
      } catch (e) {
        if (!(e instanceof ApiFailure)) throw e;
        if (e.status === 401) return;
        view.render("Error", h("h1", { tabindex: -1 }, e.status === 404 ? "Not found" : "Something went wrong"),
          h("p", { class: "form-error", role: "alert" }, e.message), h("p", {}, h("a", { href: "#/apps" }, "Back to applications")));
      }
      return;
    }
    view.render("Not found", h("h1", { tabindex: -1 }, "Not found"),
      h("p", {}, "No page here. ", h("a", { href: "#/apps" }, "Back to applications")));
  }

  document.getElementById("sign-out").addEventListener("click", () => {
    if (current) current.leave();
    signedOut("Signed out.");
  });
  document.getElementById("skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", route);
  route();
})();
