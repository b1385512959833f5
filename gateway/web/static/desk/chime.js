// A short sound for a screen pop, generated with WebAudio (no audio file). Browsers start
// audio only after the page had a user gesture: the first click or key unlocks it.
let ctx = null;

function context() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  if (!ctx) { try { ctx = new Ctx(); } catch (e) { return null; } }
  if (ctx.state === "suspended") ctx.resume().catch(() => null);
  return ctx;
}
for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, () => context(), {once: true});

/** Two rising notes for a pop; four alternating ones, louder, for an emergency. */
export function chime(emergency = false) {
  const audio = context();
  document.body.dataset.chimes = String(Number(document.body.dataset.chimes || 0) + 1);
  document.body.dataset.lastChime = emergency ? "emergency" : "pop";
  if (!audio) return;
  const notes = emergency ? [988, 740, 988, 740] : [660, 880];
  const peak = emergency ? 0.35 : 0.2;
  let t = audio.currentTime + 0.02;
  for (const freq of notes) {
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = emergency ? "square" : "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(peak, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.2);
    t += 0.22;
  }
}
