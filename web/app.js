// The registry browser's progressive enhancement. Every page works without this script: it only adds
// copy buttons and search as you type. Loaded with `defer` from the site itself (no inline script), so
// a strict Content-Security-Policy holds.
"use strict";

(function registryBrowser() {
  const SEARCH_DELAY_MS = 250;
  const COPIED_MS = 2000;

  /** Tells screen readers what just happened without moving focus. */
  function announce(text) {
    const live = document.getElementById("live-status");
    if (!live) return;
    live.textContent = "";
    // A fresh text node after a clear, so the same message twice is announced twice.
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function showCopyState(button, text, className) {
    const label = button.querySelector(".copy-label");
    if (!label) return;
    label.textContent = text;
    button.classList.add(className);
    window.clearTimeout(button.copyTimer);
    button.copyTimer = window.setTimeout(function () {
      label.textContent = "Copy";
      button.classList.remove(className);
    }, COPIED_MS);
  }

  function copy(button) {
    const text = button.getAttribute("data-copy") || "";
    navigator.clipboard.writeText(text).then(
      function () {
        showCopyState(button, "Copied", "is-copied");
        announce("Copied to the clipboard: " + text);
      },
      function () {
        showCopyState(button, "Copy failed", "is-failed");
        announce("Could not copy; select the command and copy it by hand.");
      },
    );
  }

  /** Copy buttons are rendered hidden: shown only where the clipboard can be written. */
  function enableCopyButtons(root) {
    if (!navigator.clipboard || !window.isSecureContext) return;
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (button.dataset.copyReady) return;
      button.dataset.copyReady = "1";
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  }

  function searchUrl(query) {
    return query === "" ? "/" : "/?" + new URLSearchParams({ q: query }).toString();
  }

  /** Replaces the results (list and paging) with those of the fetched page, keeping focus in the input. */
  function swapResults(doc) {
    const current = document.getElementById("repository-results");
    const fresh = doc.getElementById("repository-results");
    if (!current || !fresh) return false;
    const imported = document.importNode(fresh, true);
    current.replaceWith(imported);
    enableCopyButtons(imported);
    const status = document.getElementById("result-status");
    const freshStatus = doc.getElementById("result-status");
    if (status && freshStatus) status.textContent = freshStatus.textContent;
    if (doc.title) document.title = doc.title;
    return true;
  }

  function enableLiveSearch() {
    const input = document.querySelector("input[data-live-search]");
    if (!input || !window.fetch || !window.DOMParser || !window.AbortController) return;
    let timer = 0;
    let inFlight = null;
    let lastQuery = input.value.trim();

    async function search() {
      const query = input.value.trim();
      if (query === lastQuery) return;
      if (inFlight) inFlight.abort();
      const controller = new AbortController();
      inFlight = controller;
      const url = searchUrl(query);
      try {
        const response = await fetch(url, { signal: controller.signal, credentials: "same-origin", headers: { Accept: "text/html" } });
        // A redirect (to sign in) or an error page is not a result list: leave the page as it is.
        if (!response.ok || response.redirected) return;
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        if (controller.signal.aborted || !swapResults(doc)) return;
        lastQuery = query;
        history.replaceState(history.state, "", url);
      } catch (error) {
        if (error && error.name === "AbortError") return;
        // Offline or refused: the form's submit button still searches the ordinary way.
      } finally {
        if (inFlight === controller) inFlight = null;
      }
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(search, SEARCH_DELAY_MS);
    });
  }

  function start() {
    enableCopyButtons(document);
    enableLiveSearch();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
