/* SupportDesk console: one WebSocket per tab (contract §6) that keeps the htmx fragments fresh.
 *
 * The server renders everything; this file only decides *when* to refetch a fragment:
 *  - new_message for the open conversation   -> refetch #message-list (and mark it read)
 *  - any conversation event                  -> refetch #inbox (tabs, counts, list), debounced
 *  - a change of state of the open one        -> refetch its header, or its whole pane when its
 *                                               status, assignee or department moved
 *  - user_typing                              -> "Ana is typing…" under the messages
 *  - online_status                            -> presence dots / supervisor board
 *  - bot_context_update for the open one       -> refetch #bot-context (what the bot learned)
 *  - on the reports page, whatever moves the board also refetches #live-counters, at most once
 *    a second (and every 60 s anyway: the oldest wait grows with no event)
 *
 * Catching up, with no gap and no duplicate: every time the socket opens (the first time too:
 * the page was rendered a moment before the socket joined its groups) the console fetches every
 * visible fragment again *after* the consumer has joined its groups, so whatever happened before
 * is in the fetched fragment and whatever happens after arrives as a frame and fetches it once
 * more. A fragment is always replaced whole, never appended to (a message shows once, by its id,
 * whatever the order the fetches and frames come in), the fetches of one fragment never overlap
 * (an older answer never lands over a newer one), and a fetch that fails is tried again: until all
 * have landed the connection badge says "Reconnecting…" and only then "Live". A dropped socket
 * is reopened with exponential backoff and full jitter (at once when the browser comes back
 * online or the tab is focused), so a restarted server is not stormed by every console at once.
 */
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root || !window.htmx) return;

  var socket = null;
  var reconnectTimer = null;
  var attempts = 0;
  var openedAt = 0;
  var everConnected = false;
  var subscribed = null;
  var typingTimer = null;
  var lastTypingSent = 0;
  var inboxTimer = null;
  var boardTimer = null;
  var stateEl = document.getElementById("connection");

  function setState(state, label) {
    if (!stateEl) return;
    stateEl.dataset.state = state;
    var text = stateEl.querySelector(".connection-label");
    if (text) text.textContent = label;
  }

  function label(name, fallback) {
    return (stateEl && stateEl.dataset[name]) || fallback;
  }

  function pane() {
    var el = document.getElementById("conversation-pane");
    return el && el.dataset.conversationId ? el : null;
  }

  function currentId() {
    var el = pane();
    return el ? Number(el.dataset.conversationId) : null;
  }

  function send(type, data) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: type, data: data || {} }));
    }
  }

  // --- fragment refreshes ------------------------------------------------------------------

  // Each kind of fetch has a source element of its own. htmx keeps one request in flight per
  // source element and, asked for another meanwhile, queues only the *last* one (and resolves the
  // promise of the one it dropped at once): with the one default source (the body) an inbox
  // refresh would silently swallow a message-list refresh asked for just before it.
  var sources = {};
  function sourceFor(key) {
    var el = sources[key];
    if (!el || !document.body.contains(el)) {
      el = document.createElement("span");
      el.hidden = true;
      el.id = "refresh-" + key;
      document.body.appendChild(el);
      sources[key] = el;
    }
    return el;
  }
  function isSource(el) {
    return !!(el && el.id && el.id.indexOf("refresh-") === 0 && sources[el.id.slice(8)] === el);
  }
  // The lanes' requests, known by their XMLHttpRequest: htmx fires a request's beforeSwap on
  // its target (``detail.elt`` is the target there, not the source).
  var laneRequests = new WeakSet();
  function isLaneSwap(detail) {
    return !!(detail && detail.xhr && laneRequests.has(detail.xhr));
  }
  // The agent's own requests, by what they re-render (see the inbox's and the pane's lanes).
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (isSource(event.detail.elt)) {
      if (event.detail.xhr) laneRequests.add(event.detail.xhr);
      return;
    }
    var target = event.detail.target;
    if (!target) return;
    if (target.id === "conversation-pane") paneActions += 1;
    if (target.id === "inbox") inboxActions += 1;
  });

  // Resolves once ``busy()`` is false (polled; given up on after 30 s).
  function whenIdle(busy) {
    return new Promise(function (resolve) {
      var waited = 0;
      (function check() {
        if (!busy() || waited >= 30000) {
          resolve();
          return;
        }
        waited += 100;
        setTimeout(check, 100);
      })();
    });
  }

  // One fetch; its promise says whether the fragment really came (a network error or an error
  // status swaps nothing, and is not a catch-up). ``current`` (optional) is asked right before the
  // answer would be swapped in: false drops it, and the promise says "stale".
  function load(key, verb, url, target, headers, current) {
    var source = sourceFor(key);
    var ok = false;
    var stale = false;
    var request = null;
    function started(event) {
      if (event.detail && event.detail.elt === source) request = event.detail.xhr;
    }
    function seen(event) {
      if (event.detail && event.detail.elt === source) ok = !!event.detail.successful;
    }
    function guard(event) {
      if (!current || !event.detail || !request || event.detail.xhr !== request || current()) return;
      event.detail.shouldSwap = false;
      stale = true;
    }
    document.body.addEventListener("htmx:beforeRequest", started);
    document.body.addEventListener("htmx:afterRequest", seen);
    document.body.addEventListener("htmx:beforeSwap", guard);
    var options = { source: source, swap: target ? "outerHTML" : "none", headers: headers || {} };
    if (target) options.target = target;
    return htmx
      .ajax(verb, url, options)
      .then(
        function () { return ok; },
        function () { return false; }
      )
      .then(function (result) {
        document.body.removeEventListener("htmx:beforeRequest", started);
        document.body.removeEventListener("htmx:afterRequest", seen);
        document.body.removeEventListener("htmx:beforeSwap", guard);
        return stale ? "stale" : result;
      });
  }

  // One lane per fragment: one fetch at a time, and once more if asked meanwhile. The promise
  // of a call is settled by a fetch that *started after* it (what it asked for is in there).
  var lanes = {};
  function coalesce(key, run) {
    var lane = lanes[key] || (lanes[key] = { running: false, next: null, waiters: [] });
    lane.next = run;
    return new Promise(function (resolve) {
      lane.waiters.push(resolve);
      pump(lane);
    });
  }
  function pump(lane) {
    if (lane.running || !lane.next) return;
    var run = lane.next;
    var waiters = lane.waiters;
    lane.next = null;
    lane.waiters = [];
    lane.running = true;
    Promise.resolve()
      .then(run)
      .then(
        function (ok) { return ok !== false; },
        function () { return false; }
      )
      .then(function (ok) {
        lane.running = false;
        waiters.forEach(function (resolve) { resolve(ok); });
        pump(lane);
      });
  }

  // The inbox is not swapped under someone typing a search (it holds the search box): it is
  // fetched once they leave the box.
  var inboxPending = false;
  function typingSearch() {
    var search = document.getElementById("q");
    return !!(search && document.activeElement === search);
  }
  // The agent's own inbox requests (a tab, a filter, a search) count too: a refresh asked for
  // before one of them would bring back the old tab or filter, so it is dropped and asked again
  // (with the new list's address) once the agent's has been answered.
  var inboxActions = 0;
  function inboxActionInFlight() {
    return !!document.querySelector('[hx-target="#inbox"].htmx-request');
  }
  function runInbox() {
    return whenIdle(inboxActionInFlight).then(function () {
      var current = document.getElementById("inbox");
      if (!current) return true;
      if (typingSearch()) {
        inboxPending = true;
        return true;
      }
      inboxPending = false;
      var epoch = inboxActions;
      return load(
        "inbox",
        "GET",
        current.dataset.refreshUrl,
        "#inbox",
        { "X-Inbox-Refresh": "1" }, // a refresh: the address bar stays as it is
        function () { return inboxActions === epoch; }
      ).then(function (result) {
        return result === "stale" ? runInbox() : result;
      });
    });
  }
  function loadInbox() {
    return coalesce("inbox", runInbox);
  }
  function refreshInbox() {
    if (!document.getElementById("inbox")) return;
    clearTimeout(inboxTimer);
    inboxTimer = setTimeout(loadInbox, 250);
  }
  document.addEventListener("focusout", function (event) {
    if (inboxPending && event.target && event.target.id === "q") refreshInbox();
  });

  var countersTimer = null;
  var countersLast = 0;
  function loadCounters() {
    if (!root.dataset.countersUrl) return Promise.resolve(true);
    countersLast = Date.now();
    return coalesce("counters", function () {
      if (!document.getElementById("live-counters")) return true;
      return load("counters", "GET", root.dataset.countersUrl, "#live-counters");
    });
  }
  function refreshCounters() {
    if (!root.dataset.countersUrl || countersTimer) return;
    var wait = Math.max(200, 1000 - (Date.now() - countersLast));
    countersTimer = setTimeout(function () {
      countersTimer = null;
      loadCounters();
    }, wait);
  }
  if (root.dataset.countersUrl) setInterval(refreshCounters, 60000);

  function loadBoard() {
    if (!root.dataset.boardUrl) return Promise.resolve(true);
    return coalesce("board", function () {
      if (!document.getElementById("board")) return true;
      return load("board", "GET", root.dataset.boardUrl, "#board");
    });
  }
  function refreshBoard() {
    refreshCounters();
    if (!root.dataset.boardUrl) return;
    clearTimeout(boardTimer);
    boardTimer = setTimeout(loadBoard, 300);
  }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 120;
  }

  function scrollMessages(force) {
    var list = document.getElementById("message-list");
    if (list && (force || list.dataset.stick !== "false")) list.scrollTop = list.scrollHeight;
    hidePill();
  }

  // Opening a conversation lands on its first unread message, or at the end.
  function scrollToFirstUnread() {
    var list = document.getElementById("message-list");
    var marker = document.getElementById("first-unread");
    if (list && marker) {
      list.scrollTop = Math.max(0, marker.offsetTop - list.offsetTop - 8);
    } else {
      scrollMessages(true);
    }
  }

  // "New messages": shown when something arrives while the agent reads further up.
  function pill() {
    return document.getElementById("new-messages");
  }
  function hidePill() {
    var el = pill();
    if (el) el.hidden = true;
  }

  function entries(list) {
    return list.querySelectorAll(".msg, .system-line, .note").length;
  }

  // Where the agent was in the list, taken when the fresh one replaces it (not when it was asked
  // for: they may have scrolled meanwhile).
  var listState = null;
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var list = event.detail.target;
    if (list && list.id === "message-list") {
      listState = { stick: nearBottom(list), kept: list.scrollTop, before: entries(list) };
    }
  });

  // A refresh (not the agent's own action) leaves the popovers they had open open, with what
  // they had typed or chosen in them: a reaction picker in the list, the transfer form (its
  // agent, its note) in the header.
  var openPopovers = null;
  function popoverKey(details) {
    var owner = details.parentElement && details.parentElement.closest("[id]");
    return (details.id || "") + "|" + (owner ? owner.id : "") + "|" + details.className;
  }
  function popoverFields(details) {
    var fields = {};
    details.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (field) {
      if (field.type === "hidden" || field.type === "submit" || field.type === "file") return;
      fields[field.name] = field.type === "checkbox" || field.type === "radio" ? field.checked : field.value;
    });
    return fields;
  }
  function popoverRestore(details, fields) {
    details.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (field) {
      if (!Object.prototype.hasOwnProperty.call(fields, field.name)) return;
      if (field.type === "checkbox" || field.type === "radio") field.checked = fields[field.name];
      else field.value = fields[field.name];
    });
  }
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    openPopovers = null;
    var target = event.detail.target;
    if (!target || !isLaneSwap(event.detail) || !event.detail.shouldSwap) return;
    var open = target.querySelectorAll("details[open]");
    if (!open.length) return;
    openPopovers = {};
    open.forEach(function (details) {
      openPopovers[popoverKey(details)] = popoverFields(details);
    });
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var kept = openPopovers;
    openPopovers = null;
    var target = event.detail.target;
    if (!kept || !target) return;
    var scope = target.isConnected ? target : document;
    scope.querySelectorAll("details").forEach(function (details) {
      var key = popoverKey(details);
      if (!Object.prototype.hasOwnProperty.call(kept, key)) return;
      details.open = true;
      popoverRestore(details, kept[key]);
    });
  });

  // --- the open conversation: its pane, header and messages in one lane ----------------------
  //
  // The pane holds the header and the messages: fetched in one lane, an older pane can never
  // land over a newer message list. Nor does any of them land while the agent's own action on
  // the pane (a send, a take-over, a transfer…) is on its way: its answer re-renders the pane
  // with what was true when it was sent, so the fetch runs once it has been answered.
  var wanted = { pane: false, header: false, messages: false };

  function paneActionInFlight() {
    return !!document.querySelector('[hx-target="#conversation-pane"].htmx-request');
  }

  // Every request of the agent's own that re-renders the pane (a send, a take-over, opening
  // another conversation) counts: a fetch of the lane asked for before one of them is answered
  // with what was true before it, and is dropped (and asked again) rather than land over it.
  var paneActions = 0;

  // What decides what the pane shows beyond its header: who may write, take over, reopen.
  function paneState(el) {
    return [el.dataset.status, el.dataset.assigned, el.dataset.department].join("|");
  }

  function loadMessages(el, current) {
    listState = null;
    return load("messages", "GET", el.dataset.messagesUrl, "#message-list", null, current).then(function (ok) {
      var fresh = document.getElementById("message-list");
      var state = listState || { stick: true, kept: 0, before: 0 };
      listState = null;
      if (ok === true && fresh) {
        if (state.stick) {
          scrollMessages(true);
        } else {
          fresh.scrollTop = state.kept; // reading history: stay where the agent is
          var badge = pill();
          if (badge && entries(fresh) > state.before) badge.hidden = false;
        }
        markRead();
      }
      return ok;
    });
  }

  function runConversation() {
    return whenIdle(paneActionInFlight).then(function () {
      var want = wanted;
      wanted = { pane: false, header: false, messages: false };
      var el = pane();
      if (!el || !(want.pane || want.header || want.messages)) return true;
      var epoch = paneActions;
      var id = el.dataset.conversationId;
      function current() {
        return paneActions === epoch && currentId() === Number(id);
      }
      function again(result) {
        if (result !== "stale") return result;
        // overtaken by the agent's own action: ask again once it has been answered
        if (want.pane) wanted.pane = true;
        if (want.header) wanted.header = true;
        if (want.messages) wanted.messages = true;
        return runConversation();
      }
      if (want.pane) return load("pane", "GET", el.dataset.paneUrl, "#conversation-pane", null, current).then(again);
      var jobs = [];
      if (want.header) jobs.push(load("header", "GET", el.dataset.headerUrl, "#conversation-header", null, current));
      if (want.messages) jobs.push(loadMessages(el, current));
      return Promise.all(jobs).then(function (results) {
        if (results.indexOf("stale") !== -1) return again("stale");
        var ok = results.every(function (r) { return r === true; });
        var header = document.getElementById("conversation-header");
        var now = pane();
        if (!ok || !want.header || !header || !now || !current()) return ok;
        // the header tells the conversation's state now: when more than the header moved (it
        // was closed, taken, transferred), the whole pane follows
        if (paneState(header) !== paneState(now)) {
          want = { pane: true, header: false, messages: false };
          return load("pane", "GET", now.dataset.paneUrl, "#conversation-pane", null, current).then(again);
        }
        now.dataset.organised = header.dataset.organised || "";
        return ok;
      });
    });
  }

  function refreshConversation(parts) {
    if (!pane()) return Promise.resolve(true);
    if (parts.pane) wanted.pane = true;
    if (parts.header) wanted.header = true;
    if (parts.messages) wanted.messages = true;
    return coalesce("conversation", runConversation);
  }

  function refreshMessages() {
    return refreshConversation({ messages: true });
  }

  function refreshPane() {
    return refreshConversation({ pane: true });
  }

  // What the bot learned (summary, collected values): the panel fetches itself again.
  function loadBotContext() {
    return coalesce("bot-context", function () {
      var panel = document.getElementById("bot-context");
      var url = panel && (panel.dataset.refreshUrl || panel.getAttribute("hx-get"));
      if (!url) return true;
      return load("bot-context", "GET", url, "#bot-context");
    });
  }

  function refreshBotContext() {
    loadBotContext();
  }

  function markRead() {
    var el = pane();
    // only the assignee's reading clears the badge (a supervisor looking on does not)
    if (!el || !el.hasAttribute("data-marks-read") || document.visibilityState !== "visible") return;
    var url = el.dataset.readUrl;
    coalesce("read", function () {
      return load("read", "POST", url, null);
    });
  }

  function highlightActive() {
    var id = currentId();
    document.querySelectorAll(".conversation-row").forEach(function (row) {
      row.classList.toggle("is-active", Number(row.dataset.conversationId) === id);
    });
  }

  function resubscribe() {
    var id = currentId();
    if (subscribed && subscribed !== id) {
      send("unsubscribe:conversation", { conversationId: subscribed });
      subscribed = null;
    }
    if (id && subscribed !== id) {
      send("subscribe:conversation", { conversationId: id });
      subscribed = id;
    }
  }

  // --- events from the server ---------------------------------------------------------------

  function showTyping(data) {
    var box = document.getElementById("typing");
    if (!box || data.conversationId !== currentId()) return;
    clearTimeout(typingTimer);
    if (data.isTyping === false) {
      box.textContent = "";
      return;
    }
    box.textContent = (data.name || "") + " " + (box.dataset.label || "is typing…");
    typingTimer = setTimeout(function () { box.textContent = ""; }, 5000);
  }

  function setPresence(data) {
    document.querySelectorAll('[data-presence-user="' + data.userId + '"]').forEach(function (el) {
      el.classList.toggle("is-online", !!data.online);
    });
    refreshBoard();
  }

  function handle(frame) {
    var data = frame.data || {};
    var open = currentId();
    switch (frame.type) {
      case "new_message":
        notifyCustomerWrote(data);
        if (data.conversation === open) {
          refreshMessages();
          var box = document.getElementById("typing");
          if (box) box.textContent = "";
        }
        refreshInbox();
        refreshBoard();
        break;
      case "message_update":
        if (data.conversation === open) refreshMessages();
        break;
      case "conversation_update":
        refreshInbox();
        refreshBoard();
        if (data.id === open) {
          var el = pane();
          var assigned = data.assigned_to ? String(data.assigned_to.id) : "";
          if (el && (el.dataset.status !== data.status || el.dataset.assigned !== assigned)) {
            refreshPane();
          } else if (el && data.priority !== undefined) {
            // priority and tags (someone else's change, or a rule): the header shows them
            var organised = data.priority + "|" + (data.tags || []).map(function (t) { return t.id; }).join(",");
            if (el.dataset.organised !== organised) refreshConversation({ header: true });
          }
        }
        break;
      case "conversation_assigned":
      case "conversation_transferred":
        refreshInbox();
        refreshBoard();
        if (data.conversationId === open) {
          var current = pane();
          // our own take-over already re-rendered the pane; anything else may take it from us
          var mine = frame.type === "conversation_assigned" && current && current.dataset.assigned === String(data.userId);
          if (!mine) refreshPane(); // it may have left this agent's reach
        }
        break;
      case "bot_context_update":
        if (data.conversationId === open) refreshBotContext();
        break;
      case "user_typing":
        showTyping(data);
        break;
      case "online_status":
        setPresence(data);
        break;
      default:
        break;
    }
  }

  // --- catching up ----------------------------------------------------------------------------

  var catchUpRound = 0;
  var catchUpTimer = null;
  var catchUpTries = 0;
  var CATCH_UP_TRIES = 8; // about a minute of retries before the badge stops saying so

  function connected() {
    return !!(socket && socket.readyState === WebSocket.OPEN);
  }

  var catchUpParts = {
    inbox: loadInbox,
    conversation: function () { return refreshConversation({ header: true, messages: true }); },
    board: loadBoard,
    counters: loadCounters,
    bot: loadBotContext,
  };

  // Everything visible, fetched again now that the socket hears every change: the list and its
  // counts, the open conversation (its header, its messages — and its pane if its state moved),
  // the board or the live counters, what the bot learned. Until all of it has landed the badge
  // says "Reconnecting…"; what failed (and only that) is tried again while the socket stays open.
  function catchUp(round, parts) {
    clearTimeout(catchUpTimer);
    if (round !== catchUpRound || !connected()) return;
    parts = parts || Object.keys(catchUpParts);
    if (parts.indexOf("inbox") !== -1) clearTimeout(inboxTimer);
    Promise.all(parts.map(function (part) { return catchUpParts[part](); })).then(function (results) {
      if (round !== catchUpRound || !connected()) return; // this socket is gone: its successor catches up
      var failed = parts.filter(function (part, i) { return !results[i]; });
      catchUpTries += 1;
      if (!failed.length || catchUpTries >= CATCH_UP_TRIES) {
        if (failed.length && window.console) console.warn("console: could not catch up with", failed);
        catchUpTries = 0;
        attempts = 0; // the server answers: a later drop starts the backoff over
        setState("online", label("online", "Live"));
        return;
      }
      var ceiling = Math.min(10000, 1000 * Math.pow(2, catchUpTries - 1));
      catchUpTimer = setTimeout(function () { catchUp(round, failed); }, 250 + Math.random() * ceiling);
    });
  }

  // --- the socket ---------------------------------------------------------------------------

  // Exponential backoff with full jitter: after a restart the consoles come back spread out.
  function backoff() {
    attempts += 1;
    var ceiling = Math.min(15000, 1000 * Math.pow(2, attempts - 1));
    return 250 + Math.random() * ceiling;
  }

  function waiting() {
    // once it has been live, every attempt until it is again is a reconnection
    if (everConnected) setState("offline", label("offline", "Reconnecting…"));
    else setState("connecting", label("connecting", "…"));
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    clearTimeout(reconnectTimer);
    waiting();
    try {
      socket = new WebSocket(scheme + window.location.host + (root.dataset.wsUrl || "/ws/"));
    } catch (err) {
      socket = null;
      reconnectTimer = setTimeout(connect, backoff());
      return;
    }
    var mine = socket;
    socket.onopen = function () {
      if (socket !== mine) return;
      everConnected = true;
      openedAt = Date.now();
      subscribed = null;
      resubscribe();
      catchUpRound += 1;
      catchUpTries = 0;
      catchUp(catchUpRound);
    };
    socket.onmessage = function (event) {
      if (socket !== mine) return;
      try {
        handle(JSON.parse(event.data));
      } catch (err) {
        if (window.console) console.error(err);
      }
    };
    socket.onclose = function (event) {
      if (socket !== mine) return;
      socket = null;
      catchUpRound += 1; // what this socket was catching up is its successor's job now
      clearTimeout(catchUpTimer);
      if (event.code === 4401) {
        window.location.reload(); // the session is gone: the server sends us to the login form
        return;
      }
      // a connection that stayed up a while (or caught up) starts the backoff over; one that
      // drops at once (a server coming up and down) keeps growing it
      if (openedAt && Date.now() - openedAt > 10000) attempts = 0;
      openedAt = 0;
      waiting();
      reconnectTimer = setTimeout(connect, backoff());
    };
  }

  // Don't wait for the backoff when the network or the person comes back.
  function reconnectNow() {
    if (socket) return;
    clearTimeout(reconnectTimer);
    attempts = 0;
    connect();
  }
  window.addEventListener("online", reconnectNow);
  window.addEventListener("focus", reconnectNow);

  // --- the composer -------------------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target && target.id === "composer-body" && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      var file = document.getElementById("composer-file");
      if (target.value.trim() || (file && file.files.length)) htmx.trigger(target.form, "submit");
    }
  });

  // Images open in a viewer over the conversation (the link still works without script).
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest(".msg-media-link") : null;
    var viewer = document.getElementById("viewer");
    if (!link || !viewer || typeof viewer.showModal !== "function") return;
    event.preventDefault();
    var img = link.querySelector("img");
    document.getElementById("viewer-image").src = link.href;
    document.getElementById("viewer-image").alt = img ? img.alt : "";
    document.getElementById("viewer-open").href = link.href;
    viewer.showModal();
  });
  var viewerEl = document.getElementById("viewer");
  if (viewerEl) {
    viewerEl.addEventListener("click", function (event) {
      if (event.target === viewerEl) viewerEl.close(); // a click on the backdrop
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "composer-file") {
      var label = event.target.closest(".attach");
      if (label) {
        label.classList.toggle("has-file", event.target.files.length > 0);
        label.title = event.target.files.length ? event.target.files[0].name : label.title;
      }
    }
  });

  document.addEventListener("input", function (event) {
    var id = currentId();
    if (!id || !event.target || event.target.id !== "composer-body") return;
    var now = Date.now();
    if (now - lastTypingSent > 2500) {
      lastTypingSent = now;
      send("typing", { conversationId: id, isTyping: true });
    }
  });

  function tickWindow() {
    document.querySelectorAll(".window[data-expires]").forEach(function (el) {
      var left = new Date(el.dataset.expires).getTime() - Date.now();
      el.classList.toggle("is-closing", left < 3600 * 1000);
      if (left <= 0) refreshPane();
    });
  }

  // A pane re-rendered under the agent's fingers keeps what they were typing (not after sending).
  var draft = null;
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var body = document.getElementById("composer-body");
    draft = null;
    if (target && target.id === "conversation-pane" && body && body.value) {
      var path = (event.detail.pathInfo && event.detail.pathInfo.requestPath) || "";
      if (!/\/send\/$/.test(path)) {
        draft = { id: currentId(), text: body.value, focused: document.activeElement === body };
      }
    }
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target) return;
    var body = document.getElementById("composer-body");
    if (draft && body && !body.value && draft.id === currentId()) {
      body.value = draft.text;
      if (draft.focused) {
        body.focus();
        body.setSelectionRange(body.value.length, body.value.length);
      }
    }
    draft = null;
    if (target.id === "console") {
      resubscribe();
      highlightActive();
      updateTitle();
    }
    if (target.id === "conversation-pane" || (target.closest && target.closest("#conversation-pane"))) {
      resubscribe();
      highlightActive();
      if (target.id === "conversation-pane") {
        var path = (event.detail.pathInfo && event.detail.pathInfo.requestPath) || "";
        if (/\/c\/\d+\/(\?|$)/.test(path)) scrollToFirstUnread();
        else scrollMessages(true);
        markRead();
        var composerBody = document.getElementById("composer-body");
        if (composerBody && composerBody.hasAttribute("autofocus")) composerBody.focus();
      }
      updateComposer();
    }
    if (target.id === "inbox") {
      highlightActive();
      updateTitle();
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      reconnectNow();
      refreshInbox();
      markRead();
    }
  });

  // A safety net for what the socket cannot tell us (a conversation leaving our view).
  setInterval(function () {
    if (document.visibilityState === "visible") refreshInbox();
    tickWindow();
  }, 60000);

  // --- quick replies: "/" in the composer opens the list, filtered as the agent types ----------
  //
  // The list (role=listbox) is rendered by the server with each reply's text already filled in
  // for this conversation ({{nome}}, {{agente}}, {{protocolo}}). Typing "/" at the start of the
  // message or after a space opens it; what follows filters it (shortcut or title); ArrowUp /
  // ArrowDown move, Enter or Tab insert (Enter never sends while it is open), Escape closes.
  // The "/" button opens it too, and a click on a reply inserts it. The agent still sends.

  var quick = { open: false, start: -1, active: -1 };

  function quickEls() {
    return {
      popup: document.getElementById("quick-reply-popup"),
      list: document.getElementById("quick-reply-list"),
      button: document.getElementById("quick-reply-button"),
      body: document.getElementById("composer-body"),
    };
  }

  function fold(text) {
    return (text || "").toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "");
  }

  function quickVisible() {
    var els = quickEls();
    if (!els.list) return [];
    return Array.prototype.filter.call(els.list.querySelectorAll("[role=option]"), function (o) {
      return !o.hidden;
    });
  }

  function quickHighlight(index) {
    var els = quickEls();
    var options = quickVisible();
    if (!els.list) return;
    els.list.querySelectorAll("[role=option]").forEach(function (o) {
      o.setAttribute("aria-selected", "false");
      o.classList.remove("is-active");
    });
    quick.active = options.length ? Math.max(0, Math.min(index, options.length - 1)) : -1;
    if (quick.active < 0) {
      if (els.body) els.body.removeAttribute("aria-activedescendant");
      return;
    }
    var option = options[quick.active];
    option.setAttribute("aria-selected", "true");
    option.classList.add("is-active");
    if (els.body) els.body.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  }

  function quickFilter(term) {
    var els = quickEls();
    if (!els.list) return;
    var wanted = fold(term);
    var shown = 0;
    els.list.querySelectorAll("[role=option]").forEach(function (o) {
      var hit = !wanted || fold(o.dataset.shortcut).indexOf(wanted) === 0 || fold(o.dataset.title).indexOf(wanted) !== -1;
      o.hidden = !hit;
      if (hit) shown += 1;
    });
    var empty = els.popup.querySelector(".quick-reply-empty");
    if (empty) empty.hidden = shown > 0;
    quickHighlight(0);
  }

  function quickOpen(start, term) {
    var els = quickEls();
    if (!els.popup) return;
    quick.open = true;
    quick.start = start;
    els.popup.hidden = false;
    if (els.button) els.button.setAttribute("aria-expanded", "true");
    quickFilter(term);
  }

  function quickClose() {
    var els = quickEls();
    quick.open = false;
    quick.start = -1;
    quick.active = -1;
    if (els.popup) els.popup.hidden = true;
    if (els.button) els.button.setAttribute("aria-expanded", "false");
    if (els.body) els.body.removeAttribute("aria-activedescendant");
  }

  // The "/word" being typed just before the caret: at the start of the message or after a space.
  function slashToken(body) {
    var caret = body.selectionStart == null ? body.value.length : body.selectionStart;
    var before = body.value.slice(0, caret);
    var match = /(^|\s)\/([^\s\/]*)$/.exec(before);
    if (!match) return null;
    return { start: caret - match[2].length - 1, term: match[2] };
  }

  function quickInsert(option) {
    var els = quickEls();
    if (!option || !els.body) return;
    var body = els.body;
    var end = body.selectionEnd == null ? body.value.length : body.selectionEnd;
    var start = quick.start >= 0 ? quick.start : (body.selectionStart == null ? end : body.selectionStart);
    quickClose();
    body.focus();
    body.setRangeText(option.dataset.text, start, end, "end");
    body.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("input", function (event) {
    if (!event.target || event.target.id !== "composer-body" || !quickEls().list) return;
    var token = slashToken(event.target);
    if (token) quickOpen(token.start, token.term);
    else if (quick.open && quick.start >= 0) quickClose();
  });

  // Captured before the composer's own Enter-sends handler.
  document.addEventListener(
    "keydown",
    function (event) {
      if (!quick.open || !event.target || event.target.id !== "composer-body") return;
      var options = quickVisible();
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        var step = event.key === "ArrowDown" ? 1 : -1;
        var count = options.length || 1;
        quickHighlight((quick.active + step + count) % count);
      } else if ((event.key === "Enter" && !event.shiftKey && !event.isComposing) || event.key === "Tab") {
        event.preventDefault();
        event.stopPropagation();
        if (quick.active >= 0 && options[quick.active]) quickInsert(options[quick.active]);
        else quickClose();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        quickClose();
      }
    },
    true
  );

  document.addEventListener("mousedown", function (event) {
    // keep the focus (and the caret) in the message box while a reply is picked
    if (event.target.closest && event.target.closest("#quick-reply-list")) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    var option = event.target.closest("#quick-reply-list [role=option]");
    if (option) {
      quickInsert(option);
      return;
    }
    if (event.target.closest("#quick-reply-button")) {
      if (quick.open) {
        quickClose();
      } else {
        var body = quickEls().body;
        quickOpen(-1, "");
        if (body) body.focus();
      }
      return;
    }
    if (quick.open && !event.target.closest("#quick-replies")) quickClose();
  });

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "conversation-pane") quickClose();
  });

  // An AI draft goes into the composer only when the agent asks; sending stays a separate click.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-use-draft]") : null;
    if (!button) return;
    var draft = button.parentElement.querySelector("textarea[name=draft]");
    var body = document.getElementById("composer-body");
    if (draft && body) {
      body.value = draft.value;
      body.focus();
    }
  });

  // --- after a transfer, the list at once; the "new messages" pill ------------------------------

  document.body.addEventListener("inbox:refresh", function () {
    refreshInbox();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("#new-messages") : null;
    if (!button) return;
    scrollMessages(true);
  });

  document.addEventListener(
    "scroll",
    function (event) {
      if (event.target && event.target.id === "message-list" && nearBottom(event.target)) hidePill();
    },
    true
  );

  // --- the composer: Send only with something to send; attachments checked before upload -----

  // Meta's limits (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media):
  // the server checks the same table (conversations/uploads.py).
  var MB = 1024 * 1024;
  var SENDABLE = [
    [/^image\/(jpeg|png)$/, 5 * MB],
    [/^audio\/(aac|amr|mpeg|mp4|ogg)$/, 16 * MB],
    [/^video\/(mp4|3gpp)$/, 16 * MB],
    [
      /^(application\/pdf|application\/msword|application\/vnd\.openxmlformats-officedocument\.(wordprocessingml\.document|spreadsheetml\.sheet|presentationml\.presentation)|application\/vnd\.ms-excel|application\/vnd\.ms-powerpoint|text\/plain)$/,
      100 * MB,
    ],
  ];
  var EXTENSIONS = {
    jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", aac: "audio/aac", amr: "audio/amr",
    mp3: "audio/mpeg", m4a: "audio/mp4", ogg: "audio/ogg", mp4: "video/mp4", "3gp": "video/3gpp",
    pdf: "application/pdf", doc: "application/msword", xls: "application/vnd.ms-excel",
    ppt: "application/vnd.ms-powerpoint", txt: "text/plain",
    docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  };

  function fileProblem(file, form) {
    var ext = (file.name.split(".").pop() || "").toLowerCase();
    var type = EXTENSIONS[ext] || "";
    for (var i = 0; i < SENDABLE.length; i += 1) {
      if (SENDABLE[i][0].test(type)) {
        return file.size > SENDABLE[i][1] ? form.dataset.tooBig.replace("%s", Math.round(SENDABLE[i][1] / MB) + " MB") : "";
      }
    }
    return form.dataset.badType;
  }

  function updateComposer() {
    var form = document.getElementById("composer");
    if (!form) return;
    var body = document.getElementById("composer-body");
    var file = document.getElementById("composer-file");
    var sendButton = document.getElementById("composer-send");
    var hasFile = !!(file && file.files.length);
    if (sendButton) sendButton.disabled = !(body && body.value.trim()) && !hasFile;
  }

  function showAttachment(input) {
    var form = input.form;
    var box = document.getElementById("composer-attachment");
    if (!form || !box) return;
    var name = box.querySelector(".attachment-name");
    var error = box.querySelector(".attachment-error");
    var preview = box.querySelector(".attachment-preview");
    error.textContent = "";
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.removeAttribute("src");
    preview.hidden = true;
    if (!input.files.length) {
      var attach = input.closest(".attach");
      if (attach) attach.classList.remove("has-file");
      box.hidden = true;
      updateComposer();
      return;
    }
    var file = input.files[0];
    var problem = fileProblem(file, form);
    box.hidden = false;
    name.textContent = file.name;
    if (problem) {
      error.textContent = problem;
      input.value = ""; // never uploaded
      name.textContent = "";
      var label = input.closest(".attach");
      if (label) label.classList.remove("has-file");
    } else if (/^image\//.test(file.type)) {
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
    }
    updateComposer();
  }

  document.addEventListener("input", function (event) {
    if (event.target && event.target.id === "composer-body") updateComposer();
  });
  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "composer-file") showAttachment(event.target);
  });
  document.addEventListener("click", function (event) {
    var remove = event.target.closest ? event.target.closest("[data-remove-attachment]") : null;
    if (!remove) return;
    var input = document.getElementById("composer-file");
    if (input) {
      input.value = "";
      showAttachment(input);
    }
  });

  // --- the composer: emoji picker, reply with a quote ---------------------------------------------

  // An emoji goes in at the caret (replacing a selection), and the caret stays after it.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("#emoji-picker [data-emoji]") : null;
    if (!button) return;
    var body = document.getElementById("composer-body");
    if (!body) return;
    var start = body.selectionStart == null ? body.value.length : body.selectionStart;
    var end = body.selectionEnd == null ? start : body.selectionEnd;
    body.setRangeText(button.dataset.emoji, start, end, "end");
    body.dispatchEvent(new Event("input", { bubbles: true }));
    var picker = document.getElementById("emoji-picker");
    if (picker && !event.shiftKey) picker.open = false; // Shift+click: pick several
    body.focus();
  });

  // Escape closes an open popover (emoji, reaction, transfer) and gives the focus back to it.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    var open = event.target.closest("details.popover[open]");
    if (!open) return;
    open.open = false;
    var summary = open.querySelector("summary");
    if (summary) summary.focus();
  });

  function setReply(message) {
    var input = document.getElementById("composer-reply-to");
    var preview = document.getElementById("reply-preview");
    if (!input || !preview) return;
    input.value = message ? message.dataset.messageId : "";
    document.getElementById("reply-preview-quote").textContent = message ? message.dataset.quote : "";
    preview.hidden = !message;
    document.querySelectorAll(".msg.is-quoted").forEach(function (el) { el.classList.remove("is-quoted"); });
    if (message) message.classList.add("is-quoted");
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    var reply = event.target.closest("[data-reply-to]");
    if (reply) {
      setReply(reply.closest(".msg"));
      var body = document.getElementById("composer-body");
      if (body) body.focus();
      return;
    }
    if (event.target.closest("#reply-cancel")) {
      setReply(null);
      var composer = document.getElementById("composer-body");
      if (composer) composer.focus();
    }
  });

  // --- telling an agent in another tab: title badge, sound, desktop notification --------------

  var baseTitle = document.title.replace(/^\(\d+\) /, "");
  var lastUnread = null;
  function updateTitle() {
    var inbox = document.getElementById("inbox");
    if (!inbox) return;
    var unread = Number(inbox.dataset.unread || 0);
    baseTitle = document.title.replace(/^\(\d+\) /, "");
    document.title = (unread ? "(" + unread + ") " : "") + baseTitle;
    // a conversation became unread (e.g. the bot handed a new customer to the queue)
    if (lastUnread !== null && unread > lastUnread) notifyCustomerWrote({});
    lastUnread = unread;
  }

  function settings() {
    var form = document.getElementById("notify-settings");
    return {
      sound: !!(form && form.querySelector("[name=sound]").checked),
      desktop: !!(form && form.querySelector("[name=desktop]").checked),
    };
  }

  var audio = null;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.05;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.15);
    } catch (err) {
      /* no sound available: the title badge still tells */
    }
  }

  var lastNotified = 0;
  function notifyCustomerWrote(data) {
    if (data.direction && data.direction !== "in") return;
    var open = data.conversation !== undefined && data.conversation === currentId();
    if (document.visibilityState === "visible" && open) return; // they are reading it
    if (Date.now() - lastNotified < 3000) return; // one message, one notification
    lastNotified = Date.now();
    var wanted = settings();
    if (wanted.sound) beep();
    if (wanted.desktop && window.Notification && Notification.permission === "granted") {
      var form = document.getElementById("notify-settings");
      try {
        new Notification(form ? form.dataset.notificationTitle : "SupportDesk", { tag: "sd-" + data.conversation });
      } catch (err) {
        /* some browsers only notify from a service worker */
      }
    }
  }
  window.__notifyCustomerWrote = notifyCustomerWrote;

  // Desktop notifications are asked for when the agent ticks the box (a click), never on load.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box || !box.form || box.form.id !== "notify-settings") return;
    if (box.name === "desktop" && box.checked && window.Notification && Notification.permission === "default") {
      Notification.requestPermission();
    }
  });

  // The template picker (components/template_fields.html): only the chosen template's fields
  // are shown and sent (a disabled fieldset's inputs are neither required nor posted).
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select || !select.matches || !select.matches("[data-template-select]")) return;
    var form = select.form;
    if (!form) return;
    form.querySelectorAll("[data-template-fields]").forEach(function (fieldset) {
      var chosen = fieldset.dataset.templateFields === select.value;
      fieldset.hidden = !chosen;
      fieldset.disabled = !chosen;
    });
  });

  scrollToFirstUnread();
  if (pane()) markRead();
  updateComposer();
  updateTitle();
  connect();
})();
