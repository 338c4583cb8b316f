/**
 * An email's headers are one line each: a plan name stored with a newline ("Pro\nBcc: ...", before the API refused
 * control characters in names) ended the Subject header and added a Bcc header to the customer's mail.
 */
import { formatEmailFile } from '../../notifications/email';

test('a line break in a header value stays inside its header', () => {
  const file = formatEmailFile({
    id: 'email-0000000001',
    from: 'billing@meterloop.test',
    to: 'ada@example.com',
    subject: 'Your Pro\r\nBcc: victim@example.com\u2028trial ends',
    text: 'Hello Ada,\n\nYour trial ends soon.\n',
    eventType: 'trial.ending',
    date: new Date('2031-01-01T00:00:00Z'),
  });
  const headers = file.slice(0, file.indexOf('\n\n')).split('\n');
  expect(headers.filter((line) => line.startsWith('Subject:'))).toEqual(['Subject: Your Pro Bcc: victim@example.com trial ends']);
  expect(headers.map((line) => line.split(':')[0])).toEqual(['Message-ID', 'Date', 'From', 'To', 'Subject', 'X-Meterloop-Event', 'Content-Type']);
  expect(file.endsWith('Hello Ada,\n\nYour trial ends soon.\n')).toBe(true);
});
