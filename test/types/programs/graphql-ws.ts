// graphql-ws's useServer is typed against @types/ws's WebSocketServer: a
// ws-native server must be assignable to it.
import { GraphQLObjectType, GraphQLSchema, GraphQLString } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws-native';

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: { hello: { type: GraphQLString, resolve: () => 'world' } },
  }),
});

const wss = new WebSocketServer({ port: 0, path: '/graphql' });
const cleanup = useServer({ schema, context: (ctx) => ({ socket: ctx.extra.socket }) }, wss);
wss.on('close', () => void cleanup.dispose());
