/**
 * New messages in conversations that are not on screen: a badge on the contact for a direct
 * chat, and the "Elsewhere" list (with an Open button) for groups, channels and people who are
 * not contacts.
 */
import type { Conversation } from '@mvp/sdk';
import { $, button, clear, item, show } from './dom';

type Entry = { count: number; conversation: Conversation };

export function createUnread(options: {
  titleOf: (conversation: Conversation) => string;
  open: (conversation: Conversation) => void;
}) {
  const entries = new Map<string, Entry>();

  function render() {
    const contacts = new Set<string>();
    for (const li of $('contacts').querySelectorAll<HTMLLIElement>('li[data-user-id]')) {
      const userId = li.dataset.userId!;
      contacts.add(userId);
      let count = 0;
      for (const { conversation, count: n } of entries.values())
        if (conversation.kind === 'direct' && conversation.peerId === userId) count += n;
      li.querySelector('.unread')?.remove();
      if (count === 0) continue;
      const badge = document.createElement('small');
      badge.className = 'unread';
      badge.dataset.testid = 'unread';
      badge.textContent = `${count} new`;
      li.firstElementChild!.after(badge);
    }
    const list = clear('elsewhere');
    for (const { count, conversation } of entries.values()) {
      if (conversation.kind === 'direct' && contacts.has(conversation.peerId ?? '')) continue;
      const li = item(`${options.titleOf(conversation)}: ${count} new`, [
        button('Open', async () => options.open(conversation), 'open'),
      ]);
      li.dataset.conversationId = conversation.id;
      list.append(li);
    }
    show('elsewhere-section', list.childElementCount > 0);
  }

  return {
    /** Redraws the badges (after the contact list was rebuilt). */
    render,
    add(conversation: Conversation) {
      const count = (entries.get(conversation.id)?.count ?? 0) + 1;
      entries.set(conversation.id, { count, conversation });
      render();
    },
    /** The conversation is on screen now. */
    seen(conversationId: string) {
      if (entries.delete(conversationId)) render();
    },
  };
}
