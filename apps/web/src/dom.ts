/** The few DOM helpers the page needs. */
export function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element;
}

export function show(id: string, visible: boolean): void {
  $(id).hidden = !visible;
}

export function clear(id: string): HTMLElement {
  const element = $(id);
  element.replaceChildren();
  return element;
}

export function item(text: string, actions: HTMLElement[] = []): HTMLLIElement {
  const li = document.createElement('li');
  const label = document.createElement('span');
  label.textContent = text;
  li.append(label, ...actions);
  return li;
}

/** A button whose async action reports its failure in the status line (via `onError`). */
export function button(
  text: string,
  action: () => Promise<unknown>,
  testId?: string,
): HTMLButtonElement {
  const element = document.createElement('button');
  element.textContent = text;
  if (testId) element.dataset.testid = testId;
  onTap(element, action);
  return element;
}

/**
 * Runs `action` on every click, the button disabled until it is done (a double click cannot
 * start it twice: two "Camera on" taps opened two cameras); a failure goes to the status line.
 */
export function onTap(element: HTMLButtonElement, action: () => Promise<unknown>): void {
  element.addEventListener('click', () => {
    if (element.disabled) return;
    element.disabled = true;
    action()
      .catch((error: unknown) =>
        element.dispatchEvent(new CustomEvent('action-error', { detail: error, bubbles: true })),
      )
      .finally(() => (element.disabled = false));
  });
}
