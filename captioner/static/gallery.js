// Heatmaps over photos: hovering or focusing a word shows where the model looked for it, a click pins it.
// Each entry is a `.entry` (data-grid: "rows columns" of its maps) with a `.photo` and `.word` buttons (data-map:
// the word's map as base64 levels), inside an element with data-palette and data-alpha (see heatStyleOf).
"use strict";
const bytesOf = (base64) => Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
const wordAt = (target) => (target instanceof Element ? target.closest(".word") : null);

// Pillow's bicubic filter (a = -0.5) and its taps: the page's heatmaps match the strips', pixel for pixel.
function cubic(x) {
  x = Math.abs(x);
  return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0;
}

// For each of `size` outputs, the first input it reads from `length` inputs and the (normalised) weights.
function taps(length, size) {
  const scale = length / size, stretch = Math.max(scale, 1);
  return Array.from({ length: size }, (_, index) => {
    const centre = (index + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - 2 * stretch + 0.5), 0);
    const end = Math.min(Math.trunc(centre + 2 * stretch + 0.5), length);
    const weights = [];
    for (let source = first; source < end; source++) weights.push(cubic((source - centre + 0.5) / stretch));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    return [first, weights.map((weight) => weight / total)];
  });
}

// levels (rows x columns), row-major → (height x width), columns first as Pillow does.
function upsample(levels, rows, columns, width, height) {
  const across = taps(columns, width), down = taps(rows, height);
  const wide = new Float32Array(rows * width);
  for (let row = 0; row < rows; row++) {
    across.forEach(([first, weights], x) => {
      let sum = 0;
      weights.forEach((weight, k) => (sum += weight * levels[row * columns + first + k]));
      wide[row * width + x] = sum;
    });
  }
  const out = new Float32Array(height * width);
  down.forEach(([first, weights], y) => {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      weights.forEach((weight, k) => (sum += weight * wide[(first + k) * width + x]));
      out[y * width + x] = sum;
    }
  });
  return out;
}

// How heat is laid over the photos: the colormap as 256 RGB colours and the heat's weight, read from the element
// around the entries that carries them (`data-palette`, `data-alpha`), so pages of any layout can hold entries.
const heatStyles = new WeakMap();
function heatStyleOf(entry) {
  const holder = entry.closest("[data-palette]");
  if (!heatStyles.has(holder)) {
    heatStyles.set(holder, { palette: bytesOf(holder.dataset.palette), alpha: Number(holder.dataset.alpha) });
  }
  return heatStyles.get(holder);
}

const photoPixels = new WeakMap();  // entry → its photo's ImageData, read before any heatmap replaced it
const heatmaps = new WeakMap();  // word → its heatmap as a PNG data URI, drawn on first use

function heatmapOf(word) {
  if (heatmaps.has(word)) return heatmaps.get(word);
  const entry = word.closest(".entry");
  const photo = entry.querySelector(".photo");
  const canvas = document.createElement("canvas");
  canvas.width = photo.width;
  canvas.height = photo.height;
  const context = canvas.getContext("2d");
  if (!photoPixels.has(entry)) {
    context.drawImage(photo, 0, 0, canvas.width, canvas.height);
    photoPixels.set(entry, context.getImageData(0, 0, canvas.width, canvas.height));
  }
  const photoData = photoPixels.get(entry).data;
  const [rows, columns] = entry.dataset.grid.split(" ").map(Number);
  const levels = bytesOf(word.dataset.map);
  const smooth = upsample(levels, rows, columns, canvas.width, canvas.height);
  // Stretched after upsampling, as in the strips: the peak lands on the colormap's hottest end.
  let low = Infinity, high = -Infinity;
  for (const value of smooth) { low = Math.min(low, value); high = Math.max(high, value); }
  const scale = high > low ? 255 / (high - low) : 0;
  const { palette, alpha } = heatStyleOf(entry);
  const blended = context.createImageData(canvas.width, canvas.height);
  smooth.forEach((value, pixel) => {
    const colour = 3 * Math.round((value - low) * scale);
    for (let channel = 0; channel < 3; channel++) {
      const under = photoData[4 * pixel + channel];
      blended.data[4 * pixel + channel] = under + alpha * (palette[colour + channel] - under);
    }
    blended.data[4 * pixel + 3] = 255;
  });
  context.putImageData(blended, 0, 0);
  heatmaps.set(word, canvas.toDataURL("image/png"));
  return heatmaps.get(word);
}

function show(word) {
  const entry = word.closest(".entry");
  const photo = entry.querySelector(".photo");
  const heatmap = heatmapOf(word);
  photo.dataset.original ??= photo.getAttribute("src");
  photo.src = heatmap;
  entry.querySelectorAll(".word").forEach((other) => other.classList.toggle("active", other === word));
}

// Back to the pinned word if there is one, else to the photo.
function settle(entry) {
  const pinned = entry.querySelector(".word.pinned");
  if (pinned) return show(pinned);
  const photo = entry.querySelector(".photo");
  if (photo.dataset.original) photo.src = photo.dataset.original;
  entry.querySelectorAll(".word.active").forEach((word) => word.classList.remove("active"));
}

for (const type of ["mouseover", "focusin"]) {
  document.addEventListener(type, (event) => {
    const word = wordAt(event.target);
    if (word) show(word);
  });
}
for (const type of ["mouseout", "focusout"]) {
  document.addEventListener(type, (event) => {
    const word = wordAt(event.target);
    if (word && !word.contains(event.relatedTarget)) settle(word.closest(".entry"));
  });
}
// A click pins a word (touch screens have no hover); clicking it again unpins.
document.addEventListener("click", (event) => {
  const word = wordAt(event.target);
  if (!word) return;
  const pin = !word.classList.contains("pinned");
  word.closest(".entry").querySelectorAll(".word.pinned").forEach((other) => other.classList.remove("pinned"));
  word.classList.toggle("pinned", pin);
  settle(word.closest(".entry"));
});
