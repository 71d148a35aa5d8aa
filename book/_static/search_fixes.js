// Search results of the book's pages without raw TeX: Sphinx makes each
// result's summary from the page's HTML, where math is still TeX source
// (MathJax typesets it only in the browser). Display math is dropped from the
// summary and inline math is turned into plain text (\partial L -> ∂L).
(function () {
  const SYMBOLS = {
    partial: "∂", odot: "⊙", top: "ᵀ", sum: "Σ", prod: "Π", nabla: "∇", cdot: "·",
    times: "×", approx: "≈", le: "≤", ge: "≥", leq: "≤", geq: "≥", ne: "≠", neq: "≠",
    to: "→", rightarrow: "→", Rightarrow: "⇒", Longrightarrow: "⇒", infty: "∞", log: "log",
    exp: "exp", tanh: "tanh", max: "max", min: "min", in: "∈", sim: "~", mid: "|",
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", Delta: "Δ", epsilon: "ε", eta: "η",
    theta: "θ", lambda: "λ", mu: "μ", pi: "π", sigma: "σ", tau: "τ", phi: "φ",
    lfloor: "⌊", rfloor: "⌋", ldots: "…", dots: "…", hat: "", tilde: "", mathbb: "",
  };
  function texToText(tex) {
    return tex
      .replace(/^\\\(|\\\)$/g, "")
      .replace(/\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}/g, "$1/$2")
      .replace(/\\(?:text|mathrm|operatorname|mathbf|boldsymbol)\s*\{([^{}]*)\}/g, "$1")
      .replace(/\\(left|right|big|Big|bigg|Bigg)\b/g, "")
      .replace(/\\([A-Za-z]+)/g, (m, name) => (name in SYMBOLS ? SYMBOLS[name] : name))
      .replace(/\\[,;:! ]/g, " ")
      .replace(/\\(.)/g, "$1")
      .replace(/[{}]/g, "")
      .replace(/\s+/g, " ")
      .trim();
  }
  function patch() {
    if (typeof Search === "undefined" || !Search.htmlToText || Search._bplibPatched) return;
    const original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      const doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll("div.math").forEach((el) => el.remove());
      doc.querySelectorAll("span.math").forEach((el) => {
        el.textContent = texToText(el.textContent);
      });
      return original.call(this, doc.documentElement.outerHTML, anchor);
    };
    Search._bplibPatched = true;
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", patch);
  } else {
    patch();
  }
})();
