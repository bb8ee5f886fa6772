// Pickers (templates/macros/picker.html): typing in the search box shows only the options
// whose label or value contains the words typed; checked options always stay visible.
(function () {
  "use strict";
  document.querySelectorAll("[data-picker]").forEach(function (picker) {
    var box = picker.querySelector("[data-picker-filter]");
    var none = picker.querySelector(".picker-none");
    var options = picker.querySelectorAll(".picker-option");
    if (!box) {
      return;
    }
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      options.forEach(function (option) {
        var text = option.getAttribute("data-text") || "";
        var checked = option.querySelector("input").checked;
        var match = checked || words.every(function (w) { return text.indexOf(w) !== -1; });
        option.hidden = !match;
        shown += match ? 1 : 0;
      });
      if (none) {
        none.hidden = shown !== 0;
      }
    });
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault(); // Enter filters; it does not submit the whole form
      }
    });
  });
})();
