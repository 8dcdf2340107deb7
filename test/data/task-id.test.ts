import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTaskId, resolveClasses, splitTaskList } from '../../src/data/task-id.js';
import { DataError } from '../../src/data/errors.js';

const TEN = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

test('parseTaskId: bare names, index lists, ranges, folder paths', () => {
  assert.deepEqual(parseTaskId('clipart'), { dataset: 'clipart', selection: null });
  assert.deepEqual(parseTaskId('fashion-mnist[0-4]'), { dataset: 'fashion-mnist', selection: ['0-4'] });
  assert.deepEqual(parseTaskId('mnist[0, 2,5]'), { dataset: 'mnist', selection: ['0', '2', '5'] });
  assert.deepEqual(parseTaskId('folder:/data/a[b]/pets[cat,dog]'), {
    dataset: 'folder:/data/a[b]/pets',
    selection: ['cat', 'dog'],
  });
  assert.throws(() => parseTaskId('mnist[1,,2]'), DataError);
  assert.throws(() => parseTaskId('  '), DataError);
});

test('resolveClasses: indices, ranges and names in the order given; errors name the item', () => {
  assert.deepEqual(resolveClasses('t', ['0-4'], TEN), [0, 1, 2, 3, 4]);
  assert.deepEqual(resolveClasses('t', ['7', '2-3'], TEN), [7, 2, 3]);
  assert.deepEqual(resolveClasses('t', ['T-shirt/top', 'Bag'], ['T-shirt/top', 'Trouser', 'Bag']), [0, 2]);
  assert.deepEqual(resolveClasses('t', null, ['a', 'b']), [0, 1]);
  assert.throws(() => resolveClasses('mnist[3-1]', ['3-1'], TEN), /range '3-1' is reversed/);
  assert.throws(() => resolveClasses('mnist[10]', ['10'], TEN), /class index 10 is out of range/);
  assert.throws(() => resolveClasses('mnist[1,0-2]', ['1', '0-2'], TEN), /class '1' \(index 1\) is selected twice/);
  assert.throws(
    () => resolveClasses('x[cat]', ['cat'], ['dog', 'fish']),
    (e: unknown) => e instanceof DataError && /'cat' is neither/.test(e.message) && /dog, fish/.test(e.fix ?? ''),
  );
});

test('splitTaskList: commas inside brackets stay in the task id; unbalanced brackets are an error', () => {
  assert.deepEqual(splitTaskList('clipart[computer,shapes],mnist'), ['clipart[computer,shapes]', 'mnist']);
  assert.deepEqual(splitTaskList(' clipart[people,food] , mnist[0,2], folder:/a/b[1-3] '), [
    'clipart[people,food]',
    'mnist[0,2]',
    'folder:/a/b[1-3]',
  ]);
  assert.deepEqual(splitTaskList('mnist,,digits'), ['mnist', 'digits']);
  assert.throws(() => splitTaskList('clipart[people,food'), /task list 'clipart\[people,food' has unbalanced brackets/);
  assert.throws(() => splitTaskList('mnist]'), /unbalanced brackets/);
});
