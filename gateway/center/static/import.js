// Import: reads the chosen file in the browser (JSON lines, a JSON array, or CSV), sends its
// cards in chunks to /center/import/chunk, shows progress, and then a summary: how many were
// created, how many were duplicates, and each refused row by its row number with the reason.
// The server derives each chunk's Idempotency-Key from the chunk's bytes, so sending the same
// chunk again (a reload, a second import of the file) creates nothing twice.
"use strict";

const CHUNK_CARDS = 200;
const CHUNK_BYTES = 2 * 1024 * 1024;  // well under the gateway's body limit
const COLUMNS = ["title", "kind", "content", "tags", "metadata"];

// Rows of a file: [{row, card}] and [{row, message}] for rows that are not cards at all.
// Row numbers: the line for JSON lines, the position (from 1) in a JSON array, and for CSV the
// line as a spreadsheet shows it (the header is row 1).
function parseFile(name, text) {
  text = text.replace(/^\uFEFF/, "");
  if (/\.csv$/i.test(name)) return parseCsvCards(text);
  if (text.trimStart().startsWith("[")) return parseJsonArray(text);
  return parseJsonLines(text);
}

function parseJsonArray(text) {
  let items;
  try {
    items = JSON.parse(text);
  } catch (problem) {
    return {rows: [], refused: [{row: 1, message: "the file is not a valid JSON array (" + problem.message + ")"}]};
  }
  const rows = [], refused = [];
  items.forEach((item, i) => accept(item, i + 1, rows, refused));
  return {rows, refused};
}

function parseJsonLines(text) {
  const rows = [], refused = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let item;
    try {
      item = JSON.parse(line);
    } catch (problem) {
      refused.push({row: i + 1, message: "not valid JSON (" + problem.message + ")"});
      return;
    }
    accept(item, i + 1, rows, refused);
  });
  return {rows, refused};
}

function accept(item, row, rows, refused) {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    refused.push({row, message: "is not a card object"});
  } else {
    rows.push({row, card: item});
  }
}

function parseCsvCards(text) {
  const records = parseCsv(text);
  if (!records.length) return {rows: [], refused: [{row: 1, message: "the file is empty"}]};
  const header = records[0].cells.map((cell) => cell.trim().toLowerCase());
  const unknown = header.filter((name) => !COLUMNS.includes(name));
  if (unknown.length || !header.includes("title") || !header.includes("content")) {
    return {rows: [], refused: [{row: 1, message:
      "the header must name the columns title,kind,content,tags,metadata (title and content required)"}]};
  }
  const rows = [], refused = [];
  for (const record of records.slice(1)) {
    if (record.cells.length === 1 && record.cells[0] === "") continue;  // a blank line
    const value = {};
    header.forEach((name, i) => { value[name] = record.cells[i] ?? ""; });
    const card = {title: value.title};
    if (value.kind) card.kind = value.kind;
    try {
      card.content = JSON.parse(value.content);
    } catch {
      card.content = value.content;  // not JSON: the text itself
    }
    if (value.tags) card.tags = value.tags.split(",").map((t) => t.trim()).filter((t) => t);
    if (value.metadata) {
      try {
        card.metadata = JSON.parse(value.metadata);
      } catch (problem) {
        refused.push({row: record.line, message: "metadata: not valid JSON (" + problem.message + ")"});
        continue;
      }
    }
    rows.push({row: record.line, card});
  }
  return {rows, refused};
}

// RFC 4180: quoted fields may hold commas, quotes ("") and line breaks. Each record keeps the line
// it starts on.
function parseCsv(text) {
  const records = [];
  let cells = [], cell = "", quoted = false, line = 1, start = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else { if (c === "\n") line++; cell += c; }
    } else if (c === '"') quoted = true;
    else if (c === ",") { cells.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      cells.push(cell); records.push({line: start, cells});
      cells = []; cell = ""; line++; start = line;
    } else cell += c;
  }
  if (cell !== "" || cells.length) { cells.push(cell); records.push({line: start, cells}); }
  return records;
}

// Chunks of at most CHUNK_CARDS rows and about CHUNK_BYTES of JSON.
function chunksOf(rows) {
  const chunks = [];
  let chunk = [], bytes = 0;
  for (const row of rows) {
    const size = new TextEncoder().encode(JSON.stringify(row.card)).length;
    if (chunk.length && (chunk.length >= CHUNK_CARDS || bytes + size > CHUNK_BYTES)) {
      chunks.push(chunk); chunk = []; bytes = 0;
    }
    chunk.push(row); bytes += size;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}

// Sends one chunk; a chunk with invalid cards is sent again without them (each send is all or
// nothing). Answers {created, duplicates} and adds the refused rows to `refused`.
async function sendChunk(chunk, token, refused) {
  for (let attempt = 0; chunk.length && attempt < 5; attempt++) {
    const response = await fetch("/center/import/chunk", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-Form-Token": token},
      body: JSON.stringify({cards: chunk.map((row) => row.card)}),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 201) {
      if (response.headers.get("Idempotent-Replayed") === "true") {
        return {created: 0, duplicates: chunk.length};  // this very chunk was imported before
      }
      return {created: answer.created, duplicates: answer.duplicates};
    }
    if (response.status === 422 && Array.isArray(answer.errors) && answer.errors.some((e) => "index" in e)) {
      const bad = new Map();
      for (const error of answer.errors) {
        if (!("index" in error)) continue;
        const reason = (error.field ? error.field + ": " : "") + error.message;
        bad.set(error.index, bad.has(error.index) ? bad.get(error.index) + "; " + reason : reason);
      }
      for (const [index, message] of bad) refused.push({row: chunk[index].row, message});
      chunk = chunk.filter((_, index) => !bad.has(index));
      continue;
    }
    if ([409, 503, 504].includes(response.status)) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (response.status === 401) throw new Error("Your session has ended: sign in again, then import the file again.");
    const reason = answer.detail || response.statusText || "the server refused it";
    for (const row of chunk) refused.push({row: row.row, message: reason});
    return {created: 0, duplicates: 0};
  }
  for (const row of chunk) refused.push({row: row.row, message: "not stored: the server kept refusing it; try again"});
  return {created: 0, duplicates: 0};
}

function showSummary(summary, totals, refused, fatal) {
  summary.replaceChildren();
  const heading = document.createElement("h2");
  heading.textContent = fatal ? "Import stopped" : "Import finished";
  summary.append(heading);
  const counts = document.createElement("p");
  counts.className = "counts";
  counts.textContent = totals.created + " created, " + totals.duplicates + " duplicates, "
    + refused.length + " refused.";
  summary.append(counts);
  if (fatal) {
    const p = document.createElement("p");
    p.className = "alert";
    p.textContent = fatal;
    summary.append(p);
  }
  if (refused.length) {
    const title = document.createElement("h3");
    title.textContent = "Refused rows";
    const list = document.createElement("ul");
    list.className = "refused";
    refused.sort((a, b) => a.row - b.row);
    for (const {row, message} of refused) {
      const item = document.createElement("li");
      item.textContent = "Row " + row + ": " + message;
      list.append(item);
    }
    summary.append(title, list);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("import-form");
  const input = document.getElementById("cards-file");
  const status = document.getElementById("import-status");
  const progress = document.getElementById("import-progress");
  const label = document.getElementById("import-progress-label");
  const summary = document.getElementById("import-summary");
  const token = document.querySelector('meta[name="form-token"]').content;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = input.files[0];
    if (!file) return;
    const button = form.querySelector("button");
    button.disabled = true;
    summary.replaceChildren();
    const {rows, refused} = parseFile(file.name, await file.text());
    const totals = {created: 0, duplicates: 0};
    const chunks = chunksOf(rows);
    progress.max = Math.max(rows.length, 1);
    progress.value = 0;
    label.textContent = "Importing " + file.name + ": 0 of " + rows.length + " cards";
    status.hidden = false;
    let done = 0, fatal = null;
    try {
      for (const chunk of chunks) {
        const result = await sendChunk(chunk, token, refused);
        totals.created += result.created;
        totals.duplicates += result.duplicates;
        done += chunk.length;
        progress.value = done;
        label.textContent = "Importing " + file.name + ": " + done + " of " + rows.length + " cards";
      }
    } catch (problem) {
      fatal = problem.message;
    }
    status.hidden = true;
    showSummary(summary, totals, refused, fatal);
    button.disabled = false;
  });
});
