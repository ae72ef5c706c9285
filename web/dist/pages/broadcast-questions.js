// The questions panel of a session's page (#/broadcasts/{id}): people who may see the session
// ask the trainer in writing, up-vote each other's questions and raise a hand to ask to speak;
// its trainer marks questions answered (or waiting again) and lowers hands. The panel asks for
// GET /api/broadcasts/{id}/questions whenever the page tells it to (a `questions` message of the
// socket, the page's periodic refresh); a redraw keeps the focus on the control it was on, and
// new questions (for the trainer, new hands too) are announced to screen readers.

import { ApiError, api } from '../lib/api.js';
import {
  MAX_QUESTION, answeredPath, askedText, freshHands, freshQuestions, handPath, handRaised, invalidField, questionProblem, stagePath,
  questionsPath, splitQuestions, votePath,
} from '../lib/broadcast.js';
import { h, raw } from '../lib/dom.js';
import { errorBox } from '../lib/errors.js';
import { number, personLabel } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { siteName } from '../lib/people.js';
import { me } from '../lib/session.js';

/** @typedef {import('../lib/broadcast.js').Question} Question */
/** @typedef {import('../lib/broadcast.js').Hand} Hand */
/** @typedef {import('../lib/broadcast.js').QuestionList} QuestionList */

/**
 * A person by the name and site the list gives (never translated), their id in `data-user`.
 * @param {string} user
 * @param {string | null | undefined} name
 * @param {string} site
 */
function person(user, name, site) {
  return raw(personLabel({ display_name: name || '', site_name: siteName(site) }, user), 'span', { class: 'person', 'data-user': user });
}

/**
 * The panel, and `load` to fetch and draw the questions again.
 * @param {string} id the session
 * @param {{ trainer: boolean, over: () => boolean, stillHere: () => boolean }} o `trainer`: the
 *   person is the session's trainer; `over`: the session ended or was cancelled
 */
export function questionsPanel(id, o) {
  const myId = me().user.id;
  /** @type {QuestionList | null} */
  let data = null;
  let seq = 0, drawnKey = '';
  /** @type {Set<string> | null} */
  let seenQuestions = null;
  /** @type {Set<string> | null} */
  let seenHands = null;
  // The control to focus after the next redraw (the one an action was started from).
  /** @type {{ item: string, action: string } | null} */
  let refocus = null;
  // Actions under way, by item and action: a second click waits for the first.
  const busy = new Set();

  const loadErr = h('div');
  const actErr = h('div');
  const formErr = h('div');
  const sent = h('span', { class: 'muted', id: 'question-status', role: 'status' });
  const news = h('p', { class: 'visually-hidden', id: 'questions-news', 'aria-live': 'polite' });
  const text = h('textarea', {
    id: 'question-text', name: 'text', rows: 3, maxlength: MAX_QUESTION, 'aria-describedby': 'question-hint',
  });
  const submit = h('button', { class: 'primary', type: 'submit', id: 'question-submit' }, t('questions.ask'));
  const form = h('form', { id: 'question-form', class: 'question-form', 'aria-labelledby': 'question-label' },
    h('label', { for: 'question-text', id: 'question-label' }, t('questions.field')), text,
    h('p', { class: 'muted question-hint', id: 'question-hint' }, t('questions.hint', { max: number(MAX_QUESTION) })),
    formErr, h('div', { class: 'actions-bar' }, submit, sent));
  const closed = h('p', { class: 'notice broadcast-notice', id: 'questions-closed', hidden: true }, t('questions.closed'));
  const handBtn = h('button', { type: 'button', id: 'raise-hand', class: 'big', 'data-action': 'hand', onclick: () => toggleHand() },
    t('hands.raise'));
  const handNote = h('span', { class: 'muted', id: 'hand-status', role: 'status' });
  const handBar = h('div', { class: 'actions-bar hand-bar', id: 'hand-bar', hidden: true }, handBtn, handNote);
  const hands = h('div', { class: 'raised-hands', id: 'raised-hands', hidden: true });
  const list = h('div', { class: 'question-lists', id: 'questions' });
  const el = h('section', { class: 'box broadcast-questions', id: 'broadcast-questions', 'aria-labelledby': 'questions-heading' },
    h('h2', { id: 'questions-heading' }, t('questions.title')),
    h('p', { class: 'muted', id: 'questions-intro' }, o.trainer ? t('questions.intro_trainer') : t('questions.intro')),
    loadErr, actErr, handBar, hands, form, closed, news, list);

  /** @param {HTMLElement} box @param {any} e */
  const fail = (box, e) => { if (o.stillHere()) box.replaceChildren(errorBox(e)); };

  /**
   * Runs an action of a control of item `item` (a question's id, a person's id, `hand`), then
   * fetches the list again; the focus comes back to the control after the redraw.
   * @param {string} item
   * @param {string} action
   * @param {() => Promise<unknown>} call
   */
  async function act(item, action, call) {
    const key = `${item} ${action}`;
    if (busy.has(key)) return;
    busy.add(key);
    actErr.replaceChildren();
    const focused = document.activeElement;
    if (focused instanceof HTMLElement && el.contains(focused)) refocus = { item, action };
    try {
      await call();
    } catch (e) {
      fail(actErr, e);
    } finally {
      busy.delete(key);
    }
    await load();
  }

  async function toggleHand() {
    const up = !!data && handRaised(data.hands, myId);
    await act('hand', 'hand', () => api('PUT', handPath(id), { raised: !up }));
  }

  /** @param {Question} q */
  function questionItem(q) {
    const answered = !!q.answered_at;
    const textId = `question-text-${q.id}`;
    const trainer = !!data && data.trainer;
    const vote = !answered && !o.over()
      ? h('button', {
        type: 'button', class: 'small vote', 'data-action': 'vote', 'aria-pressed': String(!!q.voted), 'aria-describedby': textId,
        onclick: () => act(q.id, 'vote', () => api('PUT', votePath(id, q.id), { up: !q.voted })),
      }, t('questions.upvote'))
      : null;
    const mark = trainer
      ? h('button', {
        type: 'button', class: 'small', 'data-action': answered ? 'reopen' : 'answer', 'aria-describedby': textId,
        onclick: () => act(q.id, answered ? 'reopen' : 'answer', () => api('PUT', answeredPath(id, q.id), { answered: !answered })),
      }, answered ? t('questions.reopen') : t('questions.mark_answered'))
      : null;
    return h('li', {
      class: `question${answered ? ' question-answered' : ''}${q.author === myId ? ' question-mine' : ''}`,
      'data-question': q.id, 'data-answered': String(answered), 'data-votes': String(q.votes), 'data-voted': String(!!q.voted),
    },
    h('div', { class: 'question-head' },
      person(q.author, q.author_name, q.site), ' · ', h('time', { datetime: q.created_at }, askedText(q.created_at)),
      answered ? [' ', h('span', { class: 'answered-tag' }, t('questions.answered_tag'))] : null),
    raw(q.text, 'p', { class: 'question-text', id: textId }),
    h('div', { class: 'question-actions' },
      h('span', { class: 'question-votes', 'data-votes': String(q.votes) }, t('questions.votes', { count: q.votes })),
      vote, mark));
  }

  /** @param {Hand[]} raised */
  function drawHands(raised) {
    hands.replaceChildren(
      h('h3', { id: 'hands-heading' }, t('hands.title', { count: raised.length })),
      raised.length
        ? h('ul', { class: 'hand-list', id: 'hand-list', 'aria-labelledby': 'hands-heading' }, raised.map(x => h('li', { 'data-user': x.user },
          person(x.user, x.name, x.site), ' ',
          h('span', { class: 'muted' }, t('hands.raised_at', { time: askedText(x.raised_at) })), ' ',
          o.over() ? null : h('button', {
            type: 'button', class: 'small', 'data-action': 'lower', 'aria-label': t('hands.lower_named', { name: x.name || x.user }),
            onclick: () => act(x.user, 'lower', () => api('PUT', handPath(id), { raised: false, user: x.user })),
          }, t('hands.lower')),
          // Whoever raised a hand to speak, the trainer lets speak to everyone.
          o.over() || !o.trainer ? null : [' ', h('button', {
            type: 'button', class: 'small', 'data-action': 'stage', 'aria-label': t('stage.bring_named', { name: x.name || x.user }),
            onclick: () => act(x.user, 'stage', () => api('PUT', stagePath(id), { user: x.user })),
          }, t('stage.bring'))])))
        : h('p', { class: 'muted', id: 'no-hands' }, t('hands.none')));
  }

  /** Where the focus was inside the panel, to put it back after a redraw. */
  function focusNow() {
    const f = document.activeElement;
    if (!(f instanceof HTMLElement) || !el.contains(f) || !f.dataset.action) return null;
    const holder = /** @type {HTMLElement | null} */ (f.closest('[data-question], [data-user]'));
    return { item: holder ? holder.dataset.question || holder.dataset.user || '' : 'hand', action: f.dataset.action };
  }

  /** @param {{ item: string, action: string } | null} want */
  function putFocus(want) {
    if (!want) return;
    if (want.item === 'hand') { if (!handBar.hidden) handBtn.focus(); return; }
    const esc = (/** @type {string} */ s) => s.replace(/["\\]/g, '\\$&');
    const holder = el.querySelector(`[data-question="${esc(want.item)}"], [data-user="${esc(want.item)}"]:not(.person)`);
    const target = holder && (holder.querySelector(`[data-action="${want.action}"]`) || holder.querySelector('[data-action]'));
    // The control went (a hand lowered, a question closed to votes): the list's heading holds it.
    if (target instanceof HTMLElement) target.focus();
    else {
      const heading = /** @type {HTMLElement | null} */ (want.action === 'lower' ? hands.querySelector('h3') : el.querySelector('#questions-heading'));
      if (heading) { heading.tabIndex = -1; heading.focus(); }
    }
  }

  function draw() {
    if (!data) return;
    const over = o.over();
    const key = JSON.stringify([data, over]);
    if (key === drawnKey) { putFocus(refocus); refocus = null; return; }
    drawnKey = key;
    const want = refocus || focusNow();
    refocus = null;
    el.dataset.loaded = 'true';
    el.dataset.trainer = String(data.trainer);

    // What is new since the last drawing, for screen readers.
    const fresh = freshQuestions(seenQuestions, data.questions, myId);
    const raisedNow = data.trainer ? freshHands(seenHands, data.hands, myId) : [];
    seenQuestions = new Set(data.questions.map(q => q.id));
    seenHands = new Set(data.hands.map(x => x.user));
    const said = [
      fresh.length === 1 ? t('questions.new_from', { name: fresh[0].author_name || fresh[0].author })
        : fresh.length > 1 ? t('questions.new_count', { count: fresh.length }) : '',
      ...raisedNow.map(x => t('hands.new_raised', { name: x.name || x.user })),
    ].filter(Boolean).join(' ');
    if (said) news.textContent = said;

    form.hidden = over;
    closed.hidden = !over;
    const mine = handRaised(data.hands, myId);
    handBar.hidden = data.trainer || over;
    handBar.dataset.raised = String(mine);
    handBtn.textContent = mine ? t('hands.lower_mine') : t('hands.raise');
    const note = mine ? t('hands.raised_mine') : t('hands.hint');
    if (handNote.textContent !== note) handNote.textContent = note;
    hands.hidden = !data.trainer;
    if (data.trainer) drawHands(data.hands);

    const { waiting, answered } = splitQuestions(data.questions);
    list.replaceChildren(...[
      h('h3', { id: 'waiting-heading' }, t('questions.waiting_title', { count: waiting.length })),
      waiting.length
        ? h('ol', { class: 'question-list', id: 'question-list', 'aria-labelledby': 'waiting-heading' }, waiting.map(questionItem))
        : h('p', { class: 'muted', id: 'no-questions' }, t('questions.none')),
      answered.length ? h('h3', { id: 'answered-heading' }, t('questions.answered_title', { count: answered.length })) : null,
      answered.length
        ? h('ol', { class: 'question-list answered-list', id: 'answered-list', 'aria-labelledby': 'answered-heading' }, answered.map(questionItem))
        : null,
    ].filter(x => x !== null));
    putFocus(want);
  }

  async function load() {
    if (!o.stillHere()) return;
    const mine = ++seq;
    try {
      /** @type {QuestionList} */
      const next = await api('GET', questionsPath(id));
      if (mine !== seq || !o.stillHere()) return;
      loadErr.replaceChildren();
      data = { questions: next.questions || [], hands: next.hands || [], trainer: !!next.trainer };
      draw();
    } catch (e) {
      if (mine === seq) fail(loadErr, e);
    }
  }

  /** @param {HTMLElement} box */
  const refuse = box => {
    formErr.replaceChildren(box);
    text.setAttribute('aria-invalid', 'true');
    text.focus();
  };
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    formErr.replaceChildren();
    sent.textContent = '';
    text.removeAttribute('aria-invalid');
    const problem = questionProblem(text.value);
    if (problem) return refuse(errorBox(t(`questions.invalid.${problem}`, { max: number(MAX_QUESTION) })));
    submit.disabled = true;
    try {
      await api('POST', questionsPath(id), { text: text.value.trim() });
      text.value = '';
      sent.textContent = t('questions.sent');
      text.focus();
    } catch (e) {
      const f = e instanceof ApiError && e.code === 'invalid_value' ? invalidField(e.detail, ['text']) : null;
      if (f) refuse(errorBox(e)); else fail(formErr, e);
    } finally {
      submit.disabled = false;
    }
    await load();
  });
  // Ctrl+Enter (⌘+Enter) sends, as in chat boxes; Enter alone starts a new line.
  text.addEventListener('keydown', ev => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
  });

  return { el, load };
}
