import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { setBearer } from './api';
import { takeToken } from './auth';
import './styles.css';

const token = takeToken(
  { hash: location.hash, pathname: location.pathname, search: location.search, replace: (url) => history.replaceState(history.state, '', url) },
  sessionStorage,
);
setBearer(token);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App token={token} />
  </StrictMode>,
);
