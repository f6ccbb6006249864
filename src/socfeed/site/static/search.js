// Client-side search of the static site over its prebuilt index (search/index.json).
// Rule text is untrusted, so every value from the index is written with textContent or
// into attributes by the DOM API, never parsed as HTML.
"use strict";

(() => {
  const form = document.getElementById("site-search");
  if (!form) {
    return;
  }
  const statusLine = document.getElementById("search-status");
  const resultList = document.getElementById("search-results");
  const moreButton = document.getElementById("search-more");
  const activeList = document.getElementById("search-active");
  const ignoredNote = document.getElementById("search-ignored");

  // The filters of the app's feed. A rule matches one of the values of ANY_OF filters and
  // all of the values of the others, as on the server.
  const FILTERS = ["source", "language", "severity", "kind", "status", "tactic", "technique", "table", "tag"];
  const ANY_OF = new Set(["source", "language", "severity", "kind", "status"]);
  const CONTROLS = new Set(["source", "language", "severity", "kind", "technique", "table"]);
  const LABELS = {
    source: "Source", language: "Language", severity: "Severity", kind: "Kind",
    status: "Status", tactic: "Tactic", technique: "Technique", table: "Table", tag: "Tag",
  };
  const SEVERITIES = ["informational", "low", "medium", "high", "critical"];
  // Parameters this page reads, and the feed's paging, which it ignores. Any other parameter
  // of the feed (such as "mine_only") needs the server, and the page says so.
  const KNOWN_PARAMETERS = new Set(["q", ...FILTERS, "official", "sort", "page", "per_page"]);
  const PAGE_SIZE = 50;
  const TYPING_DELAY_MS = 150;

  let index = null;
  let state = readState(new URLSearchParams(window.location.search));
  let matches = [];
  let shownCount = 0;
  let typingTimer = 0;

  // Lower case, accents removed, split at anything but letters and digits: the same steps as
  // the Python side that built the index.
  function tokenize(text) {
    const plain = text.toLowerCase().normalize("NFKD").replace(/\p{M}/gu, "");
    return plain.match(/[\p{L}\p{N}]+/gu) || [];
  }

  function emptyState() {
    const filters = {};
    for (const name of FILTERS) {
      filters[name] = [];
    }
    return { q: "", filters, official: "", sort: "newest" };
  }

  // Read filters from URL parameters. Links from the feed pages use the app's parameter names,
  // and empty values (the "Any" choice of a form) mean no filter.
  function readState(params) {
    const next = emptyState();
    next.q = (params.get("q") || "").trim();
    for (const name of FILTERS) {
      const values = params.getAll(name).map((value) => value.trim()).filter((value) => value);
      next.filters[name] = [...new Set(name === "technique" ? values.map(normalizeTechnique) : values)];
    }
    const official = params.get("official");
    next.official = official === "true" || official === "false" ? official : "";
    const sort = params.get("sort");
    next.sort = sort === "severity" || sort === "title" ? sort : "newest";
    return next;
  }

  function normalizeTechnique(value) {
    return value.trim().toUpperCase().replace("/", ".");
  }

  function stateParams() {
    const params = new URLSearchParams();
    if (state.q) {
      params.append("q", state.q);
    }
    for (const name of FILTERS) {
      for (const value of state.filters[name]) {
        params.append(name, value);
      }
    }
    if (state.official) {
      params.append("official", state.official);
    }
    if (state.sort !== "newest") {
      params.append("sort", state.sort);
    }
    return params;
  }

  function saveState(push) {
    const query = stateParams().toString();
    const url = window.location.pathname + (query ? "?" + query : "");
    if (push) {
      window.history.pushState(null, "", url);
    } else {
      window.history.replaceState(null, "", url);
    }
  }

  function decodeIndex(data) {
    if (data.format !== "socfeed-search-index" || data.version !== 1) {
      throw new Error("unsupported index format " + data.format + " version " + data.version);
    }
    const field = {};
    data.fields.forEach((name, position) => {
      field[name] = position;
    });
    const postings = new Map();
    for (const [token, gaps] of Object.entries(data.tokens)) {
      const numbers = new Array(gaps.length);
      let number = 0;
      gaps.forEach((gap, position) => {
        number += gap;
        numbers[position] = number;
      });
      postings.set(token, numbers);
    }
    return { rules: data.rules, values: data.values, ruleUrl: data.rule_url, field, postings };
  }

  // Return the numbers of the rules whose text has every search word. The last word may be
  // the start of a word, so that results appear while typing.
  function textMatches(text) {
    const words = tokenize(text);
    if (words.length === 0) {
      return null;
    }
    let result = null;
    words.forEach((word, position) => {
      const found = new Set();
      if (position === words.length - 1) {
        for (const [token, numbers] of index.postings) {
          if (token.startsWith(word)) {
            numbers.forEach((number) => found.add(number));
          }
        }
      } else {
        (index.postings.get(word) || []).forEach((number) => found.add(number));
      }
      result = result === null ? found : new Set([...result].filter((number) => found.has(number)));
    });
    return result;
  }

  function valuesOf(rule, name) {
    const f = index.field;
    const table = index.values[name];
    if (ANY_OF.has(name)) {
      const position = rule[f[name]];
      return position < 0 ? [] : [table[position]];
    }
    return rule[f[name + "s"]].map((position) => table[position]);
  }

  function ruleMatches(rule) {
    for (const name of FILTERS) {
      const requested = state.filters[name];
      if (requested.length === 0) {
        continue;
      }
      let values = valuesOf(rule, name);
      if (name === "tactic") {
        values = values.map((value) => value.toLowerCase());
      }
      const want = name === "tactic" ? requested.map((value) => value.toLowerCase()) : requested;
      const ok = ANY_OF.has(name)
        ? want.some((value) => values.includes(value))
        : want.every((value) => values.includes(value));
      if (!ok) {
        return false;
      }
    }
    if (state.official) {
      const official = rule[index.field.official] === 1;
      if (official !== (state.official === "true")) {
        return false;
      }
    }
    return true;
  }

  function severityRank(rule) {
    const position = rule[index.field.severity];
    return position < 0 ? -1 : SEVERITIES.indexOf(index.values.severity[position]);
  }

  function search() {
    const byText = textMatches(state.q);
    const numbers = [];
    index.rules.forEach((rule, number) => {
      if ((byText === null || byText.has(number)) && ruleMatches(rule)) {
        numbers.push(number);
      }
    });
    // The index lists rules newest first, so that order needs no sort.
    if (state.sort === "severity") {
      numbers.sort((a, b) => severityRank(index.rules[b]) - severityRank(index.rules[a]) || a - b);
    } else if (state.sort === "title") {
      const title = index.field.title;
      const key = index.field.key;
      numbers.sort((a, b) => compare(index.rules[a][title], index.rules[b][title])
        || compare(index.rules[a][key], index.rules[b][key]));
    }
    return numbers;
  }

  function compare(a, b) {
    if (a < b) {
      return -1;
    }
    return a > b ? 1 : 0;
  }

  function filterUrl(name, value) {
    const params = new URLSearchParams();
    params.append(name, value);
    return "?" + params.toString();
  }

  function badge(name, value, label) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.className = "badge badge-" + name;
    link.href = filterUrl(name, value);
    link.title = LABELS[name];
    link.dataset.filter = name;
    link.dataset.value = value;
    link.textContent = label || value;
    item.append(link);
    return item;
  }

  function resultRow(rule) {
    const f = index.field;
    const row = document.createElement("li");
    row.className = "rule-row";
    const heading = document.createElement("h2");
    heading.className = "rule-title";
    const link = document.createElement("a");
    // The index leaves out folder names that are the key with "." for ":".
    const name = rule[f.name] === null ? rule[f.key].replaceAll(":", ".") : rule[f.name];
    link.href = form.dataset.base + index.ruleUrl.replace("{name}", name);
    link.textContent = rule[f.title] || rule[f.key];
    heading.append(link);

    const badges = document.createElement("ul");
    badges.className = "badges";
    badges.setAttribute("aria-label", "Properties");
    for (const name of ["language", "severity", "source", "technique", "table", "kind", "status"]) {
      for (const value of valuesOf(rule, name)) {
        badges.append(badge(name, value));
      }
    }
    for (const value of valuesOf(rule, "tag").slice(0, 8)) {
      badges.append(badge("tag", value));
    }

    const meta = document.createElement("p");
    meta.className = "rule-meta";
    meta.textContent = [rule[f.date] || "no date", rule[f.key]].join(" · ");
    row.append(heading, badges, meta);
    return row;
  }

  function showMore() {
    const end = Math.min(shownCount + PAGE_SIZE, matches.length);
    const rows = [];
    for (let position = shownCount; position < end; position += 1) {
      rows.push(resultRow(index.rules[matches[position]]));
    }
    resultList.append(...rows);
    shownCount = end;
    moreButton.hidden = shownCount >= matches.length;
    statusLine.textContent = describeCount();
  }

  function describeCount() {
    const total = index.rules.length;
    const count = matches.length;
    const noun = count === 1 ? "rule" : "rules";
    if (count === 0) {
      return "No rules match. Remove a filter or change the search words.";
    }
    const of = count === total ? "" : ` of ${total}`;
    return `${count}${of} ${noun} · showing ${shownCount}`;
  }

  function renderActiveFilters() {
    activeList.replaceChildren();
    for (const name of FILTERS) {
      state.filters[name].forEach((value, position) => {
        // The first value of a filter with a control is shown in the control itself.
        if (CONTROLS.has(name) && position === 0) {
          return;
        }
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = `${LABELS[name]}: ${value} ×`;
        button.setAttribute("aria-label", `Remove filter ${LABELS[name]}: ${value}`);
        button.addEventListener("click", () => {
          state.filters[name] = state.filters[name].filter((other) => other !== value);
          update(true);
        });
        item.append(button);
        activeList.append(item);
      });
    }
    activeList.hidden = activeList.children.length === 0;
  }

  function fillControls() {
    form.elements.q.value = state.q;
    for (const name of CONTROLS) {
      const control = form.elements[name];
      const value = state.filters[name][0] || "";
      if (control.tagName === "SELECT" && value && !hasOption(control, value)) {
        control.append(new Option(value, value));
      }
      control.value = value;
    }
    form.elements.official.value = state.official;
    form.elements.sort.value = state.sort;
  }

  function hasOption(select, value) {
    return [...select.options].some((option) => option.value === value);
  }

  function readControls() {
    state.q = form.elements.q.value.trim();
    for (const name of CONTROLS) {
      const value = form.elements[name].value.trim();
      const rest = state.filters[name].slice(1);
      const first = name === "technique" && value ? normalizeTechnique(value) : value;
      state.filters[name] = first ? [...new Set([first, ...rest])] : rest;
    }
    state.official = form.elements.official.value;
    state.sort = form.elements.sort.value;
  }

  function update(push) {
    saveState(push);
    fillControls();
    renderActiveFilters();
    matches = search();
    shownCount = 0;
    resultList.replaceChildren();
    showMore();
  }

  function countValues(name) {
    const counts = new Array(index.values[name].length).fill(0);
    const position = ANY_OF.has(name) ? index.field[name] : index.field[name + "s"];
    for (const rule of index.rules) {
      const value = rule[position];
      if (Array.isArray(value)) {
        value.forEach((item) => {
          counts[item] += 1;
        });
      } else if (value >= 0) {
        counts[value] += 1;
      }
    }
    return index.values[name]
      .map((value, number) => [value, counts[number]])
      .sort((a, b) => b[1] - a[1] || compare(a[0], b[0]));
  }

  function fillOptions() {
    for (const name of ["source", "language", "severity", "kind"]) {
      const select = form.elements[name];
      let pairs = countValues(name);
      if (name === "severity") {
        pairs = pairs.sort((a, b) => SEVERITIES.indexOf(a[0]) - SEVERITIES.indexOf(b[0]));
      }
      for (const [value, count] of pairs) {
        select.append(new Option(`${value} (${count})`, value));
      }
    }
    for (const name of ["technique", "table"]) {
      const list = document.getElementById(`search-${name}-options`);
      for (const [value, count] of countValues(name)) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = `${count} rules`;
        list.append(option);
      }
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (index) {
      readControls();
      update(true);
    }
  });
  form.addEventListener("change", (event) => {
    if (index && event.target !== form.elements.q) {
      readControls();
      update(true);
    }
  });
  form.elements.q.addEventListener("input", () => {
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(() => {
      if (index) {
        readControls();
        update(false);
      }
    }, TYPING_DELAY_MS);
  });
  resultList.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-filter]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    event.preventDefault();
    const name = link.dataset.filter;
    if (!state.filters[name].includes(link.dataset.value)) {
      state.filters[name].push(link.dataset.value);
    }
    update(true);
  });
  moreButton.addEventListener("click", showMore);
  window.addEventListener("popstate", () => {
    state = readState(new URLSearchParams(window.location.search));
    if (index) {
      update(false);
    }
  });

  function noteIgnoredParameters(params) {
    const ignored = [...new Set([...params.keys()].filter((name) => !KNOWN_PARAMETERS.has(name)))];
    ignoredNote.textContent = ignored.length
      ? `Not available in this static copy of the feed, so ignored: ${ignored.join(", ")}.`
      : "";
    ignoredNote.hidden = ignored.length === 0;
  }

  noteIgnoredParameters(new URLSearchParams(window.location.search));
  form.elements.q.value = state.q;
  fetch(form.dataset.index)
    .then((response) => {
      if (!response.ok) {
        throw new Error(`HTTP ${response.status} for ${response.url}`);
      }
      return response.json();
    })
    .then((data) => {
      index = decodeIndex(data);
      fillOptions();
      update(false);
      form.dataset.ready = "true";
    })
    .catch((error) => {
      statusLine.textContent = `The search index could not be loaded (${error.message}). Reload the page to retry.`;
    });
})();
