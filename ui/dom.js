// Small DOM helpers. Everything is built with createElement and textContent, never
// innerHTML, so names and comments typed by people can never become markup.
import { STATUSES } from './logic.js';

/** h('button', {class: 'x', onclick: fn}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // `value` as a property: a textarea ignores the attribute.
    else if (k === 'value' || (k in el && typeof v !== 'string')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

let uid = 0;
/** A labelled form control; every input in the app is made here so none lacks a label. */
export function field(label, control, hint) {
  control.id ||= `f${++uid}`;
  const hintEl = hint ? h('small', { id: `${control.id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

export function time(ts) {
  if (!ts) return '–';
  const d = new Date(ts);
  return h('time', { datetime: ts, title: ts }, Number.isNaN(d.getTime()) ? ts : d.toLocaleString());
}

// The notice area under the header: one live region for results and errors.
export function notify(message, kind = 'ok') {
  const box = document.getElementById('notice');
  box.replaceChildren();
  if (!message) return;
  box.className = `notice ${kind}`;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  box.append(h('span', {}, message), h('button', {
    type: 'button', class: 'link', 'aria-label': 'Dismiss message', onclick: () => notify(''),
  }, '×'));
}

/** Runs a long action with the button disabled and saying what is going on;
 *  returns the action's result, or undefined after showing its error. */
export async function busy(button, label, action) {
  const old = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = label;
  document.body.classList.add('busy');
  try {
    return await action();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = old;
    document.body.classList.remove('busy');
  }
}

export function showError(e) {
  // A 401 has already sent the person to the login page with its own message.
  if (e?.expired) return;
  notify(e?.message || String(e), 'error');
}

function openDialog(build) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'dialog' });
    const done = (value) => { dlg.close(); dlg.remove(); resolve(value); };
    dlg.addEventListener('cancel', (ev) => { ev.preventDefault(); done(null); });
    dlg.append(build(done));
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** A real <dialog> asking to confirm a destructive action; resolves true or false. */
export async function confirmDialog(title, message, confirmLabel = 'Delete') {
  const answer = await openDialog((done) => h('form', {
    method: 'dialog', onsubmit: (ev) => { ev.preventDefault(); done(true); },
  },
  h('h2', {}, title),
  h('p', {}, message),
  h('div', { class: 'actions' },
    h('button', { type: 'button', autofocus: true, onclick: () => done(false) }, 'Cancel'),
    h('button', { type: 'submit', class: 'danger' }, confirmLabel))));
  return answer === true;
}

/** A dialog with a form; `fields` are [name, label, control] and the answer is
 *  an object of their values, or null when cancelled. */
export function formDialog(title, fields, submitLabel = 'Save') {
  return openDialog((done) => {
    const controls = fields.map(([name, label, control]) => [name, field(label, control)]);
    return h('form', {
      method: 'dialog',
      onsubmit: (ev) => {
        ev.preventDefault();
        done(Object.fromEntries(fields.map(([name, , c]) => [name, c.value])));
      },
    },
    h('h2', {}, title),
    controls.map(([, el]) => el),
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => done(null) }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary' }, submitLabel)));
  });
}

export function statusSelect(value, attrs = {}) {
  return h('select', attrs, STATUSES.map(
    (s) => h('option', { value: s, selected: s === value }, s)));
}
