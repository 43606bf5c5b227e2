// console.js drives what plain HTML cannot: modal dialogs, the copy
// button, the quick expiration choices and the Revoke agreement. Every
// form still posts to the server, which checks everything again.
"use strict";
(function () {
  function byId(id) { return document.getElementById(id); }

  // openDialog fills a shared dialog from its opener's data-* attributes
  // (the form's action, the names it shows) and opens it as a modal.
  function openDialog(dialog, opener) {
    var form = dialog.querySelector("form");
    if (form && opener.dataset.action) form.setAttribute("action", opener.dataset.action);
    Object.keys(opener.dataset).forEach(function (k) {
      dialog.querySelectorAll('[data-fill="' + k + '"]').forEach(function (el) { el.textContent = opener.dataset[k]; });
      dialog.querySelectorAll('[data-fill-value="' + k + '"]').forEach(function (el) { el.value = opener.dataset[k]; });
    });
    dialog.querySelectorAll("[data-agree]").forEach(function (box) { box.checked = false; syncAgree(box); });
    // An error the server sent back with a shared dialog was about the
    // key it was sent back for, not the one this opener names.
    dialog.querySelectorAll("[data-clear-on-open]").forEach(function (el) { el.remove(); });
    dialog.returnFocus = opener;
    dialog.showModal();
  }

  function syncAgree(box) {
    var form = box.closest("form");
    form.querySelectorAll("[data-needs-agree]").forEach(function (b) { b.disabled = !box.checked; });
  }

  function copy(button) {
    var source = byId(button.dataset.copy);
    var status = button.closest("dialog, body").querySelector("[data-copy-status]");
    function done(ok) {
      if (status) status.textContent = ok ? "Copied to the clipboard." : "Could not copy: select the text and copy it yourself.";
    }
    function fallback() {
      source.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  function setDate(chip) {
    var input = chip.closest(".expiry").querySelector('input[type="date"]');
    input.value = chip.dataset.setDate;
    markChips(input);
  }

  function markChips(input) {
    input.closest(".expiry").querySelectorAll("[data-set-date]").forEach(function (c) {
      c.setAttribute("aria-pressed", String(c.dataset.setDate === input.value));
    });
  }

  document.addEventListener("click", function (e) {
    var t = e.target.closest("[data-open], [data-close], [data-copy], [data-set-date]");
    if (!t || t.disabled) return;
    if (t.dataset.open) {
      var d = byId(t.dataset.open);
      if (d) { e.preventDefault(); openDialog(d, t); }
    } else if (t.hasAttribute("data-close")) {
      t.closest("dialog").close();
    } else if (t.dataset.copy) {
      copy(t);
    } else if (t.dataset.setDate) {
      setDate(t);
    }
  });

  document.addEventListener("change", function (e) {
    if (e.target.matches("[data-agree]")) syncAgree(e.target);
    if (e.target.matches('.expiry input[type="date"]')) markChips(e.target);
  });

  document.querySelectorAll("dialog").forEach(function (d) {
    d.addEventListener("close", function () {
      if (d.returnFocus && document.contains(d.returnFocus)) d.returnFocus.focus();
    });
    // Escape on a dialog that holds a new key does what Close does: it
    // reloads the keys view, so the key (and its sealed copy) leaves the page.
    if (d.dataset.cancelSubmits) {
      d.addEventListener("cancel", function (e) {
        e.preventDefault();
        byId(d.dataset.cancelSubmits).requestSubmit();
      });
    }
  });

  // Focus stays inside an open dialog: Tab from its last control goes to
  // its first, Shift+Tab from its first to its last. (A modal dialog
  // makes the page behind it inert, but Tab would still leave for the
  // browser's own controls.)
  var focusable = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Tab") return;
    var open = document.querySelectorAll("dialog[open]");
    var d = open[open.length - 1];
    if (!d) return;
    var items = Array.prototype.filter.call(d.querySelectorAll(focusable), function (el) {
      return el.offsetParent !== null || el === document.activeElement;
    });
    if (!items.length) return;
    var first = items[0], last = items[items.length - 1];
    var inside = d.contains(document.activeElement);
    if (e.shiftKey && (document.activeElement === first || !inside)) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !inside)) {
      e.preventDefault();
      first.focus();
    }
  });

  document.querySelectorAll("dialog[data-autoopen]").forEach(function (d) {
    if (!d.open) d.showModal();
  });
})();
