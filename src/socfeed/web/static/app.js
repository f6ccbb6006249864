// Adds a copy button to each code block marked data-copy. The pages work without it: the
// code stays selectable, and its line numbers are drawn by CSS, so they are never copied.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (!navigator.clipboard) {
    return;
  }
  for (const block of document.querySelectorAll("[data-copy]")) {
    const code = block.querySelector("pre code") || block.querySelector("pre");
    if (!code) {
      continue;
    }
    const what = block.dataset.copy || "code";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-button";
    button.textContent = "Copy " + what;
    const status = document.createElement("span");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    button.addEventListener("click", async () => {
      try {
        // Pygments ends the highlighted code with a newline that the text may not have.
        await navigator.clipboard.writeText(code.textContent.replace(/\n$/, ""));
        button.textContent = "Copied";
        status.textContent = "The " + what + " is on the clipboard.";
      } catch (error) {
        button.textContent = "Copy failed";
        status.textContent = "Copying failed: " + error.message;
      }
      setTimeout(() => {
        button.textContent = "Copy " + what;
      }, 2000);
    });
    block.append(button, status);
  }
});
