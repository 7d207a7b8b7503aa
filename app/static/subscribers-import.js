// The CSV import's upload progress (dashboard, /admin/newsletters/{slug}/subscribers/import).
// htmx posts the form and reports the upload with htmx:xhr:progress; this moves the
// <progress> bar. Without JavaScript the form posts as usual and the bar stays hidden.
(function () {
  "use strict";

  function parts(event) {
    var form = event.target && event.target.closest ? event.target.closest("form[data-upload-progress]") : null;
    if (!form) {
      return null;
    }
    var box = form.querySelector(".subs-progress");
    return box ? { box: box, bar: box.querySelector("progress"), label: box.querySelector("label") } : null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var found = parts(event);
    if (found) {
      found.bar.value = 0;
      found.label.textContent = "Uploading";
      found.box.hidden = false;
    }
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var found = parts(event);
    if (!found || !event.detail.lengthComputable || !event.detail.total) {
      return;
    }
    // The upload's events come first; the answer's download reports again from 0,
    // so the bar only ever moves forward.
    var percent = Math.round((100 * event.detail.loaded) / event.detail.total);
    if (percent > found.bar.value) {
      found.bar.value = percent;
    }
    if (found.bar.value >= 100) {
      found.label.textContent = "Uploaded; importing";
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var found = parts(event);
    if (found) {
      found.box.hidden = true;
    }
  });

  // A file that cannot be imported answers 400 or 422 with the page and its message:
  // show it (htmx leaves error answers unswapped by default).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var target = event.detail.target;
    if (target && target.id === "import-result" && (status === 400 || status === 422)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
