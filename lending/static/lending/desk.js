// The desk's check-out page: Escape finishes with the patron being served, as the "New patron" button
// does (a barcode scanner types and presses Enter; the librarian's hands stay on the keyboard).
"use strict";

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") {
    return;
  }
  const finish = document.getElementById("desk-finish");
  if (finish) {
    event.preventDefault();
    finish.requestSubmit();
  }
});
