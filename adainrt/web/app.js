// The adainrt page: pick a photo and a style, send them to this server's /v1/stylize, show the result.
// Plain JavaScript, no libraries: the page works offline, served by `adainrt serve` itself.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { photo: null, styleName: null, styleFile: null, key: sessionStorage.getItem("adainrt-key") || "",
                limits: null, resultUrl: null };

function authHeaders() {
  return state.key ? { Authorization: "Bearer " + state.key } : {};
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(text, percent) {
  $("status-text").textContent = text;
  const bar = $("progress");
  bar.hidden = percent === undefined;
  if (percent === null) bar.removeAttribute("value"); else if (percent !== undefined) bar.value = percent;
}

// The server's {"error": ...} message, in words a person can act on.
async function errorOf(response) {
  let message = response.statusText || "error " + response.status;
  try { message = (await response.json()).error || message; } catch (_e) { /* not JSON */ }
  return explain(response.status, message);
}

function explain(status, message) {
  const what = {
    400: "The server could not use that input: ",
    401: "The API key is missing or wrong. Enter it above. ",
    404: "Not found: ",
    408: "The upload was too slow: ",
    413: "Too big: ",
  }[status] || "The server failed (" + status + "): ";
  if (status === 401) $("key-panel").hidden = false;
  return what + message;
}

function ready() {
  $("go").disabled = !(state.photo && (state.styleName || state.styleFile));
}

async function loadHealth() {
  const response = await fetch("healthz");
  const health = await response.json();
  state.limits = health.limits || null;
  if (health.api_key_required) {
    $("key-panel").hidden = false;
    $("api-key").value = state.key;
  }
  return health.api_key_required && !state.key;  // ask for the key before asking for the styles
}

async function loadStyles() {
  const box = $("styles");
  box.textContent = "";
  const response = await fetch("v1/styles", { headers: authHeaders() });
  if (!response.ok) {
    showError(await errorOf(response));
    return;
  }
  const names = await response.json();
  $("no-styles").hidden = names.length > 0;
  for (const name of names) box.appendChild(styleTile(name));
}

function styleTile(name) {
  const tile = document.createElement("button");
  tile.type = "button";
  tile.className = "style";
  tile.setAttribute("role", "radio");
  tile.setAttribute("aria-checked", "false");
  tile.dataset.name = name;
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  tile.append(swatch, document.createTextNode(name));
  fetch("v1/styles/" + encodeURIComponent(name) + "/thumbnail", { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : null))
    .then((blob) => {
      if (!blob) return;
      const img = document.createElement("img");
      img.alt = "";
      img.src = URL.createObjectURL(blob);
      swatch.replaceWith(img);
    })
    .catch(() => {});
  tile.addEventListener("click", () => chooseStyle(name));
  return tile;
}

function chooseStyle(name) {
  state.styleName = name;
  state.styleFile = null;
  $("style-file").value = "";
  for (const tile of document.querySelectorAll(".style")) {
    tile.setAttribute("aria-checked", String(tile.dataset.name === name));
  }
  ready();
}

function choosePhoto(file) {
  showError("");
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError("That file (" + file.name + ") is not an image: choose a JPEG, PNG or WebP photo.");
    return;
  }
  if (state.limits && file.size > state.limits.max_body_bytes) {
    showError("That photo is " + (file.size / 1048576).toFixed(1) + " MB; this server takes at most " +
              (state.limits.max_body_bytes / 1048576).toFixed(1) + " MB.");
    return;
  }
  state.photo = file;
  $("drop-text").textContent = file.name;
  const view = $("photo-view");
  view.src = URL.createObjectURL(file);
  view.hidden = false;
  view.onload = () => {
    // a phone photo can be above the server's pixel limit as it is: send it smaller by default
    const pixels = view.naturalWidth * view.naturalHeight;
    if (state.limits && pixels > state.limits.max_pixels && $("size").value === "0") $("size").value = "1024";
  };
  ready();
}

function stylize() {
  showError("");
  const form = new FormData();
  form.append("content", state.photo, state.photo.name || "photo");
  const query = new URLSearchParams({ alpha: $("alpha").value, size: $("size").value });
  if (state.styleFile) form.append("style", state.styleFile, state.styleFile.name || "style");
  else query.set("style", state.styleName);
  if ($("colour").value) query.set("preserve_color", $("colour").value);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "v1/stylize?" + query.toString());
  xhr.responseType = "blob";
  xhr.setRequestHeader("Accept", "image/png");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) setStatus("Uploading…", Math.round((100 * event.loaded) / event.total));
  };
  xhr.upload.onload = () => setStatus("Stylizing…", null);
  xhr.onerror = () => done("Cannot reach the server: is `adainrt serve` still running?");
  xhr.ontimeout = xhr.onerror;
  xhr.onload = async () => {
    if (xhr.status !== 200) {
      let message = xhr.statusText;
      try { message = JSON.parse(await xhr.response.text()).error || message; } catch (_e) { /* not JSON */ }
      done(explain(xhr.status, message));
      return;
    }
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(xhr.response);
    const result = $("result");
    result.src = state.resultUrl;
    result.hidden = false;
    const link = $("download");
    link.href = state.resultUrl;
    link.download = (state.photo.name || "photo").replace(/\.[^.]*$/, "") + "_stylized.png";
    link.hidden = false;
    done("");
    setStatus("Done");
  };
  $("go").disabled = true;
  setStatus("Uploading…", 0);
  xhr.send(form);
}

function done(message) {
  setStatus("");
  if (message) showError(message);
  ready();
}

function wire() {
  $("photo").addEventListener("change", (e) => choosePhoto(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choosePhoto(e.dataTransfer.files[0]);
  });
  $("style-file").addEventListener("change", (e) => {
    state.styleFile = e.target.files[0] || null;
    if (state.styleFile) {
      state.styleName = null;
      for (const tile of document.querySelectorAll(".style")) tile.setAttribute("aria-checked", "false");
    }
    ready();
  });
  $("alpha").addEventListener("input", () => { $("alpha-value").textContent = Number($("alpha").value).toFixed(2); });
  $("go").addEventListener("click", stylize);
  $("key-save").addEventListener("click", () => {
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("adainrt-key", state.key);
    showError("");
    loadStyles();
  });
}

wire();
loadHealth()
  .then((needsKey) => (needsKey ? setStatus("Enter this server's API key to begin.") : loadStyles()))
  .catch(() => showError("Cannot reach the server: is `adainrt serve` still running?"));
