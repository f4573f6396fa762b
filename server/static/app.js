// The pages' small script: renders the procedure diagram (vendored mermaid, loaded only
// on pages that have one) and adds and removes rows of the household editor.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var diagrams = document.querySelectorAll("pre.mermaid");
    if (diagrams.length && window.mermaid) {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", flowchart: { htmlLabels: false } });
      window.mermaid.run({ nodes: diagrams }).then(function () {
        document.body.setAttribute("data-diagram", "ready");
      }).catch(function () {
        document.body.setAttribute("data-diagram", "failed");
      });
    }
    document.addEventListener("click", function (event) {
      var add = event.target.closest("[data-add-row]");
      if (add) {
        event.preventDefault();
        var list = document.getElementById(add.getAttribute("data-add-row"));
        var template = document.getElementById(add.getAttribute("data-template"));
        if (list && template) {
          var index = list.children.length;
          var html = template.innerHTML.split("__INDEX__").join(String(index));
          list.insertAdjacentHTML("beforeend", html);
        }
      }
      var remove = event.target.closest("[data-remove-row]");
      if (remove) {
        event.preventDefault();
        var row = remove.closest("[data-row]");
        if (row) { row.remove(); }
      }
    });
  });
})();
