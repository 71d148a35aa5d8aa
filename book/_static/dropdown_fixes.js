// Code blocks inside a folded dropdown (the derivations after an exercise) are
// hidden when the theme gives every scrollable code block its tab stop
// (tabindex 0) on load, so they would stay unreachable by keyboard once the
// dropdown is opened: give them theirs when it opens ("toggle" does not bubble,
// hence the capture phase).
document.addEventListener("toggle", function (event) {
  const details = event.target;
  if (!(details instanceof HTMLDetailsElement) || !details.open) return;
  details.querySelectorAll("pre, .cell_output > .output").forEach(function (el) {
    el.tabIndex = el.scrollWidth > el.clientWidth || el.scrollHeight > el.clientHeight ? 0 : -1;
  });
}, true);
