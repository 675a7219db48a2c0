/* SupportDesk console: one WebSocket per tab (contract §6) that keeps the htmx fragments fresh.
 *
 * The server renders everything; this file only decides *when* to refetch a fragment:
 *  - new_message for the open conversation   -> refetch #message-list (and mark it read)
 *  - any conversation event                  -> refetch #inbox (tabs, counts, list), debounced
 *  - a change of state of the open one        -> refetch its header/pane
 *  - user_typing                              -> "Ana is typing…" under the messages
 *  - online_status                            -> presence dots / supervisor board
 *  - bot_context_update for the open one       -> refetch #bot-context (what the bot learned)
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
        return htmx.ajax("GET", current.dataset.refreshUrl, { target: "#inbox", swap: "outerHTML" });
      });
    }, 250);
  }

  function refreshBoard() {
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
  }

  function refreshMessages() {
    coalesce("messages", function () {
      var el = pane();
      if (!el) return null;
      var list = document.getElementById("message-list");
      var stick = !list || nearBottom(list);
      return htmx
        .ajax("GET", el.dataset.messagesUrl, { target: "#message-list", swap: "outerHTML" })
        .then(function () {
          if (stick) scrollMessages(true);
        });
    });
    markRead();
  }

  function refreshPane() {
    var el = pane();
    if (!el) return;
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
    if (!el || document.visibilityState !== "visible") return;
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
          }
        }
        break;
      case "conversation_assigned":
      case "conversation_transferred":
        refreshInbox();
        refreshBoard();
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
    if (target.id === "conversation-pane" || (target.closest && target.closest("#conversation-pane"))) {
      resubscribe();
      highlightActive();
      if (target.id === "conversation-pane") {
        scrollMessages(true);
        markRead();
        var body = document.getElementById("composer-body");
        if (body && body.hasAttribute("autofocus")) body.focus();
      }
    }
    if (target.id === "inbox") highlightActive();
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

  // A quick reply is inserted into the composer at the cursor; the agent still sends it.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches("[data-quick-reply]")) return;
    var option = select.options[select.selectedIndex];
    var body = document.getElementById("composer-body");
    if (option && option.dataset.body && body) {
      var at = body.selectionStart || body.value.length;
      body.value = body.value.slice(0, at) + option.dataset.body + body.value.slice(at);
      body.focus();
    }
    select.selectedIndex = 0;
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

  scrollMessages(true);
  if (pane()) markRead();
  connect();
})();
