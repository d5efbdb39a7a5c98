import base from '@mvp/eslint-config';

export default base;
