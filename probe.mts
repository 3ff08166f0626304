import { PGlite } from '@electric-sql/pglite';
let t=Date.now(); const a = await PGlite.create(); console.log('create', Date.now()-t);
await a.exec('create table x(i int); insert into x values (1)');
t=Date.now(); const b = await (a as any).clone(); console.log('clone', Date.now()-t, (await b.query('select * from x')).rows);
t=Date.now(); const c = await PGlite.create(); console.log('create2', Date.now()-t);
