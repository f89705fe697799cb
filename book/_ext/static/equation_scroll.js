// Added by book/_ext/page_chrome.py.
// Marks each display equation that is wider than its box (class "eq-scrolls"), once MathJax has
// typeset the page and again when the window is resized. Only marked equations get the scroll
// shadows of page_chrome.css: the shadows' covers are painted in the page's background colour,
// which showed as white bands at the ends of every equation inside a coloured box (a theorem,
// a proof, an admonition) even where nothing scrolled.
(function () {
  "use strict";
  function mark() {
    var boxes = document.querySelectorAll('div.math mjx-container[display="true"]');
    for (var i = 0; i < boxes.length; i++) {
      boxes[i].classList.toggle("eq-scrolls", boxes[i].scrollWidth > boxes[i].clientWidth + 1);
    }
  }
  function start() {
    var mj = window.MathJax;
    var typeset = mj && mj.startup && mj.startup.promise ? mj.startup.promise : Promise.resolve();
    typeset.then(mark);
  }
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
  window.addEventListener("resize", mark);
})();
