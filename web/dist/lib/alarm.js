// A short sound that asks for attention (a critical result): two beeps from a Web Audio
// oscillator, repeated every few seconds until stopped. Browsers may refuse sound until the
// person has touched the page: then it stays silent (the banner still shows) and starts with
// the first touch. Never throws.

/** How often the beeps repeat while the alarm is on. */
export const REPEAT_MS = 10000;

/** @type {{ ctx: AudioContext | null, timer: ReturnType<typeof setInterval> | undefined, on: boolean, unlock: (() => void) | null }} */
const alarm = { ctx: null, timer: undefined, on: false, unlock: null };

/** The page's audio context, made once; null where there is no Web Audio. */
function context() {
  try {
    if (!alarm.ctx) {
      const w = /** @type {any} */ (globalThis);
      const Ctor = w.AudioContext || w.webkitAudioContext;
      if (!Ctor) return null;
      alarm.ctx = /** @type {AudioContext} */ (new Ctor());
    }
    return alarm.ctx;
  } catch (_) {
    return null;
  }
}

/** Two short beeps now, if the browser lets the page make sound. Returns whether it tried. */
export function beep() {
  const ctx = context();
  if (!ctx) return false;
  try {
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const t0 = ctx.currentTime + 0.02;
    for (const at of [t0, t0 + 0.3]) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = 'square';
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.15, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + 0.22);
    }
    return true;
  } catch (_) {
    return false;
  }
}

/** Beeps now and every REPEAT_MS until `stopAlarm`; the first touch of the page lets sound out. */
export function startAlarm() {
  if (alarm.on) return;
  alarm.on = true;
  beep();
  alarm.timer = setInterval(beep, REPEAT_MS);
  const doc = /** @type {any} */ (globalThis).document;
  if (doc && !alarm.unlock) {
    alarm.unlock = () => { if (alarm.on) beep(); };
    doc.addEventListener('pointerdown', alarm.unlock, { once: true });
    doc.addEventListener('keydown', alarm.unlock, { once: true });
  }
}

export function stopAlarm() {
  alarm.on = false;
  clearInterval(alarm.timer);
  alarm.timer = undefined;
  const doc = /** @type {any} */ (globalThis).document;
  if (doc && alarm.unlock) {
    doc.removeEventListener('pointerdown', alarm.unlock);
    doc.removeEventListener('keydown', alarm.unlock);
  }
  alarm.unlock = null;
}

/** Whether the alarm is on (for the tests). */
export function alarmOn() { return alarm.on; }
