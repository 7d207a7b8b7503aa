// The development mail catcher (/_dev/mail): each caught email's frame is as tall as
// the email, so the page scrolls once and the frame has no scrollbar of its own. The
// frames are sandboxed without scripts but same-origin, so this page can read their
// height.
(function () {
  "use strict";

  function fit(frame) {
    var doc = frame.contentDocument;
    if (!doc || !doc.documentElement) {
      return;
    }
    // Shrink first: a document is never shorter than its frame, so measuring a frame
    // that is too tall would keep it too tall once the page got wider.
    frame.style.height = "0px";
    var border = frame.offsetHeight - frame.clientHeight; // the style sheet's border-box
    var height = doc.documentElement.scrollHeight;
    if (doc.body) {
      height = Math.max(height, doc.body.scrollHeight);
    }
    frame.style.height = height + border + "px";
  }

  function loaded(frame) {
    fit(frame);
    // Images that arrive after the frame's load event make the email taller.
    var images = frame.contentDocument ? frame.contentDocument.images : [];
    for (var i = 0; i < images.length; i++) {
      if (!images[i].complete) {
        images[i].addEventListener("load", fit.bind(null, frame));
      }
    }
  }

  function start() {
    var frames = document.querySelectorAll("iframe.mail-frame");
    for (var i = 0; i < frames.length; i++) {
      var frame = frames[i];
      frame.addEventListener("load", loaded.bind(null, frame));
      var doc = frame.contentDocument;
      if (doc && doc.readyState === "complete" && doc.URL === "about:srcdoc") {
        loaded(frame);
      }
    }
    window.addEventListener("resize", function () {
      for (var j = 0; j < frames.length; j++) {
        fit(frames[j]);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
