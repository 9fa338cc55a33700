// The demo model `clipper up` deploys as model `sum` for app `demo`: each
// input (a Float64Array, as the app's input type is doubles) is answered
// with the sum of its numbers, so {"doubles":[1,2,3]} gets "6".
// A model module's default export takes a batch of inputs and returns one
// output per input, in order (design.md § Commands).
export default async function predict(inputs) {
  return inputs.map((x) => String(x.reduce((a, b) => a + b, 0)));
}
