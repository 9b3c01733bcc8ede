/* hasses.js: a page helper for hasses-go streams, wrapping EventSource.
 * Served by the SSE port at /hasses.js; no dependencies. Types: hasses.d.ts.
 *
 *   const h = new Hasses("https://push.example.com/sse?subscribe=room1", {
 *     onmessage: (e) => show(e.data),
 *     onreset: () => reloadState(),
 *   });
 *
 * - resumes after a page reload or in a new tab of the same session: the last
 *   id is kept in sessionStorage and the stream reopened with lastEventId=;
 * - a hasses-reset event (events were lost) calls onreset once;
 * - token renewal: getToken() is called for a fresh token (access_token=)
 *   when the server announces expiry (hasses-expiring, -jwt-renew-before
 *   ahead of the token's exp) or the stream is refused (401), and the
 *   stream is reopened with it and the last id, so nothing is missed. A
 *   getToken that refreshes the hasses_token cookie instead returns
 *   nothing (set withCredentials for a cookie to another origin);
 * - named events: addEventListener(name, fn), as on EventSource;
 * - state: "connecting", "open" or "closed", and lastEventId;
 * - never reconnects faster than retry (and backs off on repeated failures).
 */
(function (root) {
  "use strict";

  function Hasses(url, options) {
    if (!(this instanceof Hasses)) return new Hasses(url, options);
    var o = options || {};
    this.url = String(url);
    this.onmessage = o.onmessage || null;
    this.onreset = o.onreset || null;
    this.onstatechange = o.onstatechange || null;
    this.onerror = o.onerror || null;
    this.getToken = o.getToken || null;
    this.withCredentials = !!o.withCredentials;
    this.retry = o.retry > 0 ? o.retry : 3000;
    this.maxRetry = o.maxRetry > 0 ? o.maxRetry : 60000;
    this.storageKey = o.storageKey || "hasses:" + this.url;
    this.state = "connecting";
    this.lastEventId = load(this.storageKey);
    this._listeners = {}; // name -> [fn]
    this._token = o.token || "";
    this._es = null;
    this._timer = 0;
    this._failures = 0;
    this._openedAt = 0;
    this._closed = false;
    var self = this;
    if (this.getToken && !this._token) {
      this._renew(0);
    } else {
      this._open();
    }
    // A tab that comes back from the back-forward cache reopens.
    if (root.addEventListener) {
      root.addEventListener("pageshow", function (e) {
        if (e.persisted && !self._closed) self._reopen(0);
      });
    }
  }

  Hasses.prototype.addEventListener = function (name, fn) {
    (this._listeners[name] = this._listeners[name] || []).push(fn);
    if (this._es) this._es.addEventListener(name, this._relay(name), false);
  };

  Hasses.prototype.removeEventListener = function (name, fn) {
    var l = this._listeners[name];
    if (l) this._listeners[name] = l.filter(function (f) { return f !== fn; });
  };

  /* close stops the stream for good; the stored id is kept. */
  Hasses.prototype.close = function () {
    this._closed = true;
    clearTimeout(this._timer);
    if (this._es) this._es.close();
    this._es = null;
    this._setState("closed");
  };

  /* forget drops the stored id: the next page starts live. */
  Hasses.prototype.forget = function () {
    this.lastEventId = "";
    save(this.storageKey, "");
  };

  Hasses.prototype._streamURL = function () {
    var u = this.url.replace(/([?&])(lastEventId|access_token)=[^&]*/g, "$1").replace(/[?&]+$/, "");
    var extra = [];
    if (this.lastEventId) extra.push("lastEventId=" + encodeURIComponent(this.lastEventId));
    if (this._token) extra.push("access_token=" + encodeURIComponent(this._token));
    if (!extra.length) return u;
    return u + (u.indexOf("?") < 0 ? "?" : "&") + extra.join("&");
  };

  Hasses.prototype._open = function () {
    if (this._closed) return;
    var self = this;
    var es = new EventSource(this._streamURL(), { withCredentials: this.withCredentials });
    this._es = es;
    this._openedAt = Date.now();
    this._setState("connecting");
    es.onopen = function () {
      if (es !== self._es) return;
      self._setState("open");
    };
    es.onmessage = function (e) {
      if (es !== self._es) return;
      self._seen(e);
      if (self.onmessage) self.onmessage(e);
    };
    es.addEventListener("hasses-reset", function (e) {
      if (es !== self._es) return;
      self._seen(e);
      if (self.onreset) self.onreset(e.data, e);
    }, false);
    es.addEventListener("hasses-expiring", function (e) {
      if (es !== self._es) return;
      // The event has no id of its own: e.lastEventId is the stream's
      // position (the last event's id, or the opening id), where the new
      // stream resumes.
      self._seen(e);
      if (self.getToken) self._renew(0, true);
    }, false);
    for (var name in this._listeners) {
      if (Object.prototype.hasOwnProperty.call(this._listeners, name)) {
        es.addEventListener(name, this._relay(name), false);
      }
    }
    es.onerror = function (e) {
      if (es !== self._es) return;
      if (self.onerror) self.onerror(e);
      if (es.readyState === 2) {
        // EventSource gave up (a refusal such as 401, or not an event
        // stream): reopen ourselves, with a fresh token if we can get one.
        self._failures++;
        var wait = self._backoff();
        if (self.getToken) self._renew(wait);
        else self._reopen(wait);
      } else {
        // EventSource reconnects by itself after the server's retry:.
        self._setState("connecting");
      }
    };
  };

  // _relay dispatches a named event to this name's listeners.
  Hasses.prototype._relay = function (name) {
    var self = this;
    var es = this._es;
    if (!es) return function () {};
    es._hassesRelays = es._hassesRelays || {};
    if (es._hassesRelays[name]) return function () {}; // already relaying
    var relay = function (e) {
      if (es !== self._es) return;
      self._seen(e);
      var l = self._listeners[name] || [];
      for (var i = 0; i < l.length; i++) l[i].call(self, e);
    };
    es._hassesRelays[name] = relay;
    return relay;
  };

  Hasses.prototype._seen = function (e) {
    if (e.lastEventId) {
      this.lastEventId = e.lastEventId;
      save(this.storageKey, e.lastEventId);
    }
    this._failures = 0;
    if (this.state !== "open") this._setState("open");
  };

  Hasses.prototype._backoff = function () {
    var wait = this.retry * Math.pow(2, Math.max(0, this._failures - 1));
    return Math.min(wait, this.maxRetry);
  };

  // _reopen closes the current EventSource and opens a new one after wait
  // ms, and never sooner than retry after the last open.
  Hasses.prototype._reopen = function (wait) {
    if (this._closed) return;
    clearTimeout(this._timer);
    if (this._es) this._es.close();
    this._es = null;
    this._setState("connecting");
    var since = Date.now() - this._openedAt;
    wait = Math.max(wait, this.retry - since, 0);
    var self = this;
    this._timer = setTimeout(function () { self._open(); }, wait);
  };

  // _renew gets a fresh token and reopens with it. ahead: the stream still
  // works (hasses-expiring); if getToken fails it is left to run until its
  // token expires, and the refusal that follows renews again.
  Hasses.prototype._renew = function (wait, ahead) {
    var self = this;
    var es = this._es;
    var done = function (token) {
      if (ahead && es !== self._es) return; // already reopened meanwhile
      if (token) self._token = String(token);
      self._reopen(wait);
    };
    var failed = function () {
      if (ahead) return;
      self._failures++;
      self._reopen(self._backoff());
    };
    try {
      var t = this.getToken();
      if (t && typeof t.then === "function") {
        t.then(done, failed);
      } else {
        done(t);
      }
    } catch (err) {
      failed();
    }
  };

  Hasses.prototype._setState = function (s) {
    if (this.state === s) return;
    this.state = s;
    if (this.onstatechange) this.onstatechange(s);
  };

  function load(key) {
    try { return root.sessionStorage.getItem(key) || ""; } catch (e) { return ""; }
  }

  function save(key, v) {
    try { root.sessionStorage.setItem(key, v); } catch (e) { /* storage off */ }
  }

  root.Hasses = Hasses;
})(typeof window !== "undefined" ? window : this);
