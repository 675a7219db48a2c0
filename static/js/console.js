/* SupportDesk console: one WebSocket per tab (contract §6) that keeps the htmx fragments fresh.
 *
 * The server renders everything; this file only decides *when* to refetch a fragment:
 *  - new_message for the open conversation   -> refetch #message-list (and mark it read)
 *  - any conversation event                  -> refetch #inbox (tabs, counts, list), debounced
 *  - a change of state of the open one        -> refetch its header/pane
 *  - user_typing                              -> "Ana is typing…" under the messages
 *  - online_status                            -> presence dots / supervisor board
 *  - bot_context_update for the open one       -> refetch #bot-context (what the bot learned)
 *  - on the reports page, whatever moves the board also refetches #live-counters, at most once
 *    a second (and every 60 s anyway: the oldest wait grows with no event)
 * After a dropped connection it reconnects with exponential backoff and refetches every visible
 * fragment, so nothing that happened while it was offline is missed.
 */
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root || !window.htmx) return;

  var socket = null;
  var reconnectTimer = null;
  var attempts = 0;
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

  // htmx drops a request for an element that already has one in flight, so a refresh asked for
  // meanwhile would be lost: run one at a time per fragment and repeat once if asked again.
  var running = {};
  var again = {};
  function coalesce(key, run) {
    if (running[key]) {
      again[key] = run;
      return;
    }
    running[key] = true;
    Promise.resolve()
      .then(run)
      .catch(function () {})
      .then(function () {
        running[key] = false;
        var next = again[key];
        again[key] = null;
        if (next) coalesce(key, next);
      });
  }

  function refreshInbox() {
    var inbox = document.getElementById("inbox");
    if (!inbox) return;
    clearTimeout(inboxTimer);
    inboxTimer = setTimeout(function () {
      var search = document.getElementById("q");
      if (search && document.activeElement === search) return; // don't fight the typist
      coalesce("inbox", function () {
        var current = document.getElementById("inbox");
        if (!current) return null;
        return htmx.ajax("GET", current.dataset.refreshUrl, {
          target: "#inbox",
          swap: "outerHTML",
          headers: { "X-Inbox-Refresh": "1" }, // a refresh: the address bar stays as it is
        });
      });
    }, 250);
  }

  var countersTimer = null;
  var countersLast = 0;
  function refreshCounters() {
    if (!root.dataset.countersUrl || countersTimer) return;
    var wait = Math.max(200, 1000 - (Date.now() - countersLast));
    countersTimer = setTimeout(function () {
      countersTimer = null;
      countersLast = Date.now();
      coalesce("counters", function () {
        return htmx.ajax("GET", root.dataset.countersUrl, { target: "#live-counters", swap: "outerHTML" });
      });
    }, wait);
  }
  if (root.dataset.countersUrl) setInterval(refreshCounters, 60000);

  function refreshBoard() {
    refreshCounters();
    if (!root.dataset.boardUrl) return;
    clearTimeout(boardTimer);
    boardTimer = setTimeout(function () {
      coalesce("board", function () {
        return htmx.ajax("GET", root.dataset.boardUrl, { target: "#board", swap: "outerHTML" });
      });
    }, 300);
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

  function refreshMessages() {
    coalesce("messages", function () {
      var el = pane();
      if (!el) return null;
      listState = null;
      return htmx
        .ajax("GET", el.dataset.messagesUrl, { target: "#message-list", swap: "outerHTML" })
        .then(function () {
          var fresh = document.getElementById("message-list");
          var state = listState || { stick: true, kept: 0, before: 0 };
          listState = null;
          if (!fresh || state.stick) {
            scrollMessages(true);
            return;
          }
          fresh.scrollTop = state.kept; // reading history: stay where the agent is
          var badge = pill();
          if (badge && entries(fresh) > state.before) badge.hidden = false;
        });
    });
    markRead();
  }

  // A pane refresh never lands while the agent's message is on its way: it would swap the form
  // the answer is meant for. It runs once the send has been answered.
  var paneAfterSend = false;
  function sending() {
    var form = document.getElementById("composer");
    return !!(form && form.classList.contains("htmx-request"));
  }
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (paneAfterSend && event.detail.elt && event.detail.elt.id === "composer") {
      paneAfterSend = false;
      refreshPane();
    }
  });

  function refreshPane() {
    var el = pane();
    if (!el) return;
    if (sending()) {
      paneAfterSend = true;
      return;
    }
    var url = window.location.pathname.indexOf("/c/") === 0 ? window.location.pathname : null;
    if (!url) return;
    coalesce("pane", function () {
      return htmx.ajax("GET", url, { target: "#conversation-pane", swap: "outerHTML" });
    });
  }

  // What the bot learned (summary, collected values): the panel fetches itself again.
  function refreshBotContext() {
    var panel = document.getElementById("bot-context");
    var url = panel && (panel.dataset.refreshUrl || panel.getAttribute("hx-get"));
    if (!url) return;
    coalesce("bot-context", function () {
      if (!document.getElementById("bot-context")) return null;
      return htmx.ajax("GET", url, { target: "#bot-context", swap: "outerHTML" });
    });
  }

  function markRead() {
    var el = pane();
    // only the assignee's reading clears the badge (a supervisor looking on does not)
    if (!el || !el.hasAttribute("data-marks-read") || document.visibilityState !== "visible") return;
    var url = el.dataset.readUrl;
    coalesce("read", function () {
      return htmx.ajax("POST", url, { swap: "none", source: "#typing" });
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
            if (el.dataset.organised !== organised) refreshPane();
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

  // --- the socket ---------------------------------------------------------------------------

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    setState("connecting", stateEl ? stateEl.dataset.connecting || "…" : "");
    try {
      socket = new WebSocket(scheme + window.location.host + (root.dataset.wsUrl || "/ws/"));
    } catch (err) {
      socket = null;
      attempts += 1;
      reconnectTimer = setTimeout(connect, Math.min(15000, 500 * Math.pow(2, attempts)));
      return;
    }
    socket.onopen = function () {
      var reconnected = everConnected;
      everConnected = true;
      attempts = 0;
      subscribed = null;
      setState("online", stateEl ? stateEl.dataset.online || "Live" : "");
      resubscribe();
      if (reconnected) {
        // whatever happened while we were away: fetch the visible fragments again
        refreshInbox();
        refreshMessages();
        refreshBoard();
        refreshBotContext();
      }
    };
    socket.onmessage = function (event) {
      try {
        handle(JSON.parse(event.data));
      } catch (err) {
        if (window.console) console.error(err);
      }
    };
    socket.onclose = function (event) {
      socket = null;
      if (event.code === 4401) {
        window.location.reload(); // the session is gone: the server sends us to the login form
        return;
      }
      setState("offline", stateEl ? stateEl.dataset.offline || "Offline" : "");
      attempts += 1;
      var delay = Math.min(15000, 500 * Math.pow(2, attempts)) * (0.75 + Math.random() * 0.5);
      reconnectTimer = setTimeout(connect, delay);
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
