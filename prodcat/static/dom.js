// The two DOM helpers every prodcat page shares (served as /static/dom.js, loaded before the page's script).
"use strict";
const $ = (sel) => document.querySelector(sel);
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value; else if (key === "text") node.textContent = value;
    // through the CSSOM: the pages' Content-Security-Policy (style-src 'self') refuses style attributes
    else if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value); else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}
