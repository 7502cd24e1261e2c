// Boot: pick the theme, resume the browser session from its refresh cookie when there
// is one, else show the sign-in form; then hand over to the chat screen.

import { ApiError, Session } from "./api.js";
import { ChatApp } from "./app.js";
import { Backoff } from "./backoff.js";

const THEME_KEY = "termrooms.theme";
const $ = (id) => document.getElementById(id);
const session = new Session();
let registering = false;

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_KEY, theme);
}

function showSignIn(message = "") {
  $("chat").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("signin-username").focus();
}

function setRegistering(on) {
  registering = on;
  $("invite-row").hidden = !on;
  $("signin-submit").textContent = on ? "register" : "sign in";
  $("signin-mode-line").textContent = on ? "create an account with an invite code" : "sign in to chat";
  $("signin-switch").textContent = on ? "have an account? sign in" : "new here? register with an invite code";
  $("signin-password").autocomplete = on ? "new-password" : "current-password";
}

async function enterChat() {
  $("signin").hidden = true;
  $("signin-error").textContent = "";
  $("signin-password").value = "";
  const chat = new ChatApp(session, { onSignedOut: (message) => showSignIn(message) });
  await chat.start();
}

async function submitSignIn(event) {
  event.preventDefault();
  const username = $("signin-username").value.trim();
  const password = $("signin-password").value;
  const submit = $("signin-submit");
  submit.disabled = true;
  $("signin-error").textContent = "";
  try {
    if (registering) await session.register(username, password, $("signin-invite").value.trim());
    else await session.login(username, password);
    history.replaceState(null, "", location.pathname); // drop ?invite= from the address bar
    await enterChat();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const wait = error.retryAfter ? ` (try again in ${error.retryAfter} s)` : "";
    $("signin-error").textContent = `${error.detail}${wait}`;
  } finally {
    submit.disabled = false;
  }
}

/** Resume from the refresh cookie, retrying while the server is away (a restart). */
async function resume() {
  const backoff = new Backoff();
  for (;;) {
    try {
      await session.refresh();
      await enterChat();
      return;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (!error.transient) {
        showSignIn();
        return;
      }
      const delay = backoff.next();
      showSignIn(`${error.detail} Retrying in ${Math.ceil(delay / 1000)} s…`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

setTheme(localStorage.getItem(THEME_KEY) ?? "dark");
$("theme-toggle").addEventListener("click", () =>
  setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"),
);
$("signin-form").addEventListener("submit", submitSignIn);
$("signin-switch").addEventListener("click", () => setRegistering(!registering));

const invite = new URLSearchParams(location.search).get("invite");
if (invite) {
  setRegistering(true);
  $("signin-invite").value = invite;
}
if (session.resumable) resume();
else showSignIn();
