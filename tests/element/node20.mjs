// matrix-js-sdk 43 targets Node 22; the one newer built-in it calls on Node 20 is
// Promise.withResolvers (everything else it checks for and works around itself).
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
