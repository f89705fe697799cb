// Measures one rendered page of the book (evaluated by test_pages.py through Playwright).
// Returns plain data; the Python side turns it into counts and pass/fail decisions.
// Called as an async function with one argument: {openDropdowns: bool, minCellGapPx: number}.
async (options) => {
  const main = document.querySelector("main") || document.body;
  const article = document.querySelector("article.bd-article") || main;
  const describe = (el) => {
    const id = el.id || (el.closest("[id]") ? el.closest("[id]").id : "");
    const text = (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 70);
    return `${el.tagName.toLowerCase()}${id ? "#" + id : ""} "${text}"`;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const out = {};

  // --- Dropdowns: every <details> (sphinx-design dropdowns, myst-nb hidden cells,
  // togglebutton) and every togglebutton button must open when its summary is clicked.
  out.dropdowns = 0;
  out.dropdownsNotOpening = [];
  if (options.openDropdowns) {
    // Menus of the page header (download, repository, launch buttons): open, then close again.
    for (const toggle of document.querySelectorAll("button.dropdown-toggle")) {
      if (!visible(toggle)) continue;
      const menu = toggle.parentElement.querySelector(".dropdown-menu");
      if (!menu) continue;
      out.dropdowns += 1;
      toggle.click();
      await sleep(50);
      const shown = menu.getBoundingClientRect().height > 0 && getComputedStyle(menu).display !== "none";
      if (!shown) out.dropdownsNotOpening.push(describe(toggle) + " (menu " + describe(menu) + ")");
      toggle.click();
      await sleep(20);
    }
    for (const details of article.querySelectorAll("details")) {
      if (details.open) continue;
      const summary = details.querySelector(":scope > summary");
      if (!summary || !visible(summary)) continue; // nested in a closed one: opened with it
      out.dropdowns += 1;
      summary.scrollIntoView();
      summary.click();
      await sleep(50);
      const body = [...details.children].filter((c) => c.tagName !== "SUMMARY");
      const shown = body.some((c) => c.getBoundingClientRect().height > 0);
      if (!details.open || !shown) out.dropdownsNotOpening.push(describe(summary));
    }
    for (const button of article.querySelectorAll("button.toggle-button")) {
      if (!visible(button)) continue;
      const target = document.getElementById(button.dataset.target || "") ||
        button.closest(".toggle, .admonition") || button.parentElement;
      if (!target.classList.contains("toggle-hidden")) continue;
      out.dropdowns += 1;
      button.scrollIntoView();
      button.click();
      await sleep(50);
      if (target.classList.contains("toggle-hidden")) out.dropdownsNotOpening.push(describe(button));
    }
    window.scrollTo(0, 0);
  }

  // --- Images: all must load; figures must be shown large enough for their text.
  const imgs = [...document.querySelectorAll("img")];
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map((img) => (img.complete ? null : new Promise((resolve) => {
    img.addEventListener("load", resolve, { once: true });
    img.addEventListener("error", resolve, { once: true });
    setTimeout(resolve, 5000);
  }))));
  out.images = imgs.length;
  out.brokenImages = imgs.filter((img) => !img.complete || img.naturalWidth === 0)
    .map((img) => img.getAttribute("src"));
  out.figures = [...article.querySelectorAll("img")]
    .filter((img) => img.naturalWidth > 0 && visible(img))
    .map((img) => ({
      src: img.currentSrc || img.src,
      rendered: img.getBoundingClientRect().width,
      natural: img.naturalWidth,
      label: describe(img.closest("figure") || img.closest(".cell_output") || img),
    }));

  // --- Math: typeset, without errors, fitting its box.
  const mj = window.MathJax;
  out.mathjaxLoaded = Boolean(mj && mj.startup && mj.startup.promise);
  if (out.mathjaxLoaded) {
    await mj.startup.promise;
    if (mj.startup.document && mj.startup.document.whenReady) await mj.startup.document.whenReady(() => null);
  }
  const mathNodes = [...article.querySelectorAll(".math")];
  out.math = mathNodes.length;
  out.untypesetMath = mathNodes.filter((el) => !el.querySelector("mjx-container"))
    .map((el) => el.textContent.trim().slice(0, 60));
  out.mathErrors = [];
  if (out.mathjaxLoaded && mj.startup.document) {
    for (const item of mj.startup.document.math) {
      let mml = "";
      try { mml = mj.startup.toMML(item.root); } catch (e) { mml = "<merror>" + e; }
      if (mml.includes("<merror") || /mathcolor="red"/.test(mml)) {
        out.mathErrors.push(String(item.math).replace(/\s+/g, " ").trim().slice(0, 80));
      }
    }
  }
  for (const el of article.querySelectorAll("mjx-merror")) out.mathErrors.push(describe(el));
  // TeX left as text (not inside math, code or scripts), e.g. an unparsed $...$.
  out.rawTex = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest(
      "pre, code, script, style, .math, mjx-container, .highlight, .cell_input") ?
      NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent;
    if (/\\([a-zA-Z]{2,}|[()[\]])|\$\$|\$\\/.test(text)) {
      out.rawTex.push(text.replace(/\s+/g, " ").trim().slice(0, 80));
    }
  }

  // Display equations: the typeset formula must fit the width of its box. An equation that is
  // wider is "scrollable" when its own box (div.math or the mjx-container) scrolls sideways,
  // so that the scrollbar sits right under it, and "clipped" otherwise (cut off by a distant
  // ancestor, or spilling over the margin).
  const scrollsX = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  out.displayMath = 0;
  // Inline formulas cannot break across lines (MathJax 3): one wider than the room to the right
  // edge of its paragraph runs past the box (cut off, or over the margin).
  out.wideInlineMath = [];
  for (const box of article.querySelectorAll('mjx-container:not([display="true"])')) {
    if (!visible(box) || box.closest("table, .cell_output, .output")) continue;
    const block = box.closest("p, li, dd, td, th, figcaption, div");
    if (!block) continue;
    // the paragraph's edge, or the article's or the window's where the paragraph itself was
    // pushed wider by the formula
    const edge = Math.min(block.getBoundingClientRect().right, article.getBoundingClientRect().right,
                          document.documentElement.clientWidth);
    const over = box.getBoundingClientRect().right - edge;
    if (over > 1) {
      out.wideInlineMath.push(`${describe(block)} (${Math.round(over)} px past its right edge)`);
    }
  }
  out.wideEquations = [];
  out.equationsOverNumber = [];
  out.paintedEquations = [];
  for (const box of article.querySelectorAll('mjx-container[display="true"]')) {
    if (!visible(box)) continue;
    out.displayMath += 1;
    const formula = box.querySelector(":scope > mjx-math") || box.firstElementChild;
    const mathDiv = box.closest("div.math") || box.parentElement;
    const width = formula.getBoundingClientRect().width;
    const avail = Math.min(box.clientWidth, mathDiv.clientWidth);
    // scroll shadows (page_chrome.css) belong to equations that scroll: on one that fits, their
    // covers show as bands of the page's colour (on a theorem's or a proof's coloured box)
    if (width <= avail + 1 && getComputedStyle(box).backgroundImage !== "none") {
      out.paintedEquations.push(mathDiv.id || describe(mathDiv));
    }
    if (width > avail + 1) {
      const ownScroll = [box, mathDiv].some((el) => scrollsX(el) && el.scrollWidth > el.clientWidth);
      out.wideEquations.push({
        label: mathDiv.id || describe(mathDiv),
        width: Math.round(width),
        box: Math.round(avail),
        scrollable: ownScroll,
      });
    }
    const eqno = mathDiv.querySelector(".eqno");
    if (eqno && visible(eqno)) {
      // The part of the formula one sees: cut to its box where the box scrolls.
      const f = formula.getBoundingClientRect();
      const clip = scrollsX(box) ? box.getBoundingClientRect() : f;
      const a = { left: Math.max(f.left, clip.left), right: Math.min(f.right, clip.right), top: f.top, bottom: f.bottom };
      const b = eqno.getBoundingClientRect();
      const overlap = a.right > b.left + 1 && a.left < b.right && a.bottom > b.top && a.top < b.bottom;
      if (overlap) out.equationsOverNumber.push(mathDiv.id || describe(mathDiv));
    }
  }

  // --- Code: printed output (and, for information, code input) wider than its box.
  const overflowing = (el) => el.scrollWidth > el.clientWidth + 1;
  const outputBlocks = [...article.querySelectorAll(".cell_output pre, .cell_output table, .output pre")]
    .filter(visible);
  out.outputs = outputBlocks.length;
  // Printed output text (every <pre> of a cell's output, visible or not): checks.py looks for
  // progress-bar redraws in it.
  out.outputTexts = [...article.querySelectorAll(".cell_output pre, .output pre")]
    .map((el) => ({ label: describe(el), text: el.textContent }));
  // Cells of output tables (pandas) that hold only a missing-value marker ("NaN", "None", ...):
  // checks.py fails them unless the table says what the missing cell means in words.
  out.missingValueCells = [];
  for (const cell of article.querySelectorAll(".cell_output table td")) {
    const text = cell.textContent.trim();
    if (/^(nan|NaN|None|<NA>|NaT|-?inf)$/.test(text)) {
      out.missingValueCells.push(`${describe(cell.closest("table"))}: a cell "${text}"`);
    }
  }
  // A value that a cell's last line returned, shown as its bare repr ("0.143050384001981"):
  // myst-nb renders such a text-only result as div.output.text_plain (print output is a stream).
  out.bareResults = [...article.querySelectorAll(".cell_output .output.text_plain")]
    .map((el) => describe(el));
  out.wideOutputs = [];
  for (const el of new Set(outputBlocks)) {
    if (el.tagName === "TABLE") {
      const holder = el.parentElement;
      const width = el.getBoundingClientRect().width;
      if (width > holder.clientWidth + 1) {
        out.wideOutputs.push({ label: describe(el), width: Math.round(width), box: holder.clientWidth });
      }
    } else if (overflowing(el)) {
      out.wideOutputs.push({ label: describe(el), width: el.scrollWidth, box: el.clientWidth });
    }
  }
  const inputs = [...article.querySelectorAll("pre")]
    .filter((el) => visible(el) && !el.closest(".cell_output, .output"));
  out.codeInputs = inputs.length;
  out.wideCodeInputs = inputs.filter(overflowing)
    .map((el) => ({ label: describe(el), width: el.scrollWidth, box: el.clientWidth }));

  // --- Tables: the text of two neighbouring cells of a row must not run together (a table
  // without the theme's cell padding prints "-12110.4" and "3" as "-12110.43"). A cell's text
  // extent is the union of its visible text (MathJax's hidden assistive MathML left out) and its
  // typeset formulas.
  const textExtent = (cell) => {
    let left = Infinity, right = -Infinity;
    const add = (rect) => {
      if (rect.width > 0 && rect.height > 0) { left = Math.min(left, rect.left); right = Math.max(right, rect.right); }
    };
    const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT, {
      acceptNode: (node) => (node.parentElement.closest("mjx-container, script, style") || !node.textContent.trim() ?
        NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
    });
    while (texts.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(texts.currentNode);
      for (const rect of range.getClientRects()) add(rect);
    }
    for (const formula of cell.querySelectorAll("mjx-container > mjx-math")) add(formula.getBoundingClientRect());
    return left < right ? { left, right } : null;
  };
  out.tables = 0;
  out.crampedTables = [];
  for (const table of article.querySelectorAll("table")) {
    if (!visible(table)) continue;
    out.tables += 1;
    let worst = null;
    for (const row of table.rows) {
      const cells = [...row.cells].map((cell) => ({ cell, extent: textExtent(cell), box: cell.getBoundingClientRect() }))
        .filter((c) => c.extent);
      for (let i = 0; i + 1 < cells.length; i++) {
        const [a, b] = [cells[i].box, cells[i + 1].box];
        if (a.bottom <= b.top || b.bottom <= a.top) continue; // stacked (a phone layout), not side by side
        const gap = cells[i + 1].extent.left - cells[i].extent.right;
        if (worst === null || gap < worst.gap) worst = { gap, a: cells[i].cell, b: cells[i + 1].cell };
      }
    }
    if (worst && worst.gap < options.minCellGapPx) {
      const text = (el) => el.textContent.replace(/\s+/g, " ").trim().slice(0, 30);
      out.crampedTables.push({ label: describe(table), gap: Math.round(worst.gap * 10) / 10,
        cells: `"${text(worst.a)}" | "${text(worst.b)}"` });
    }
  }

  // --- Page: no sideways scrolling; list what sticks out.
  const root = document.documentElement;
  out.viewport = root.clientWidth;
  out.pageOverflowPx = Math.max(root.scrollWidth, document.body.scrollWidth) - root.clientWidth;
  out.sticksOut = [];
  if (out.pageOverflowPx > 0) {
    for (const el of document.body.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.right > root.clientWidth + 1 && r.width > 0 && visible(el)) {
        const parentSticks = el.parentElement &&
          el.parentElement.getBoundingClientRect().right > root.clientWidth + 1;
        if (!parentSticks) out.sticksOut.push(`${describe(el)} right=${Math.round(r.right)}`);
        if (out.sticksOut.length >= 5) break;
      }
    }
  }

  // --- Search entry points visible in the page chrome (the issue: two search boxes).
  const searchEntries = [...document.querySelectorAll(
    "input[type=search], input[name=q], button.search-button, .search-button-field, .search-button__button")]
    .filter((el) => visible(el) && !el.closest(".search-button__wrapper"));
  out.searchBoxes = searchEntries.length;
  out.searchBoxLabels = searchEntries.map(describe);
  return out;
}
