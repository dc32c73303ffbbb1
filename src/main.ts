import { mount } from 'svelte';
import App from './ui/App.svelte';
import { AppController } from './app/app-controller.ts';
import { startOfflineSupport, type OfflineStatus } from './sw/register.ts';
import './ui/app.css';

// The dev server sends the isolation headers itself and has no service worker.
const offline: OfflineStatus = import.meta.env.PROD
  ? await startOfflineSupport(new URL('service-worker.js', new URL(import.meta.env.BASE_URL, document.baseURI)))
  : { isolated: globalThis.crossOriginIsolated === true, offlineReady: false, note: null };

const app = await AppController.start(offline);
const target = document.getElementById('app')!;
target.replaceChildren(); // the start-up message in index.html
export default mount(App, { target, props: { app } });
