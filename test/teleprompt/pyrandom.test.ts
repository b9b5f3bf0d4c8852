import { describe, expect, it } from "vitest";
import { PyRandom } from "../../src/engine/teleprompt/pyrandom.js";

// Expected values printed by CPython 3.11's random module.
describe("PyRandom matches CPython's random.Random", () => {
  it("random()", () => {
    const r = new PyRandom(0);
    expect([r.random(), r.random(), r.random()]).toEqual([0.8444218515250481, 0.7579544029403025, 0.420571580830845]);
  });
  it("sample() on small (pool) and large (set) populations", () => {
    expect(new PyRandom(0).sample([...Array(30).keys()], 16)).toEqual([27, 12, 24, 13, 1, 8, 16, 15, 28, 9, 22, 11, 6, 23, 4, 19]);
    expect(new PyRandom(0).sample([...Array(100).keys()], 16)).toEqual([49, 97, 53, 5, 33, 65, 62, 51, 38, 61, 45, 74, 27, 64, 17, 36]);
  });
  it("shuffle(), randint(), randbelow() and big/negative seeds", () => {
    expect(new PyRandom(5).shuffle([...Array(20).keys()])).toEqual([4, 9, 6, 5, 14, 17, 18, 1, 2, 15, 10, 3, 12, 7, 13, 0, 16, 11, 8, 19]);
    expect(new PyRandom(7).randint(1, 4)).toBe(3);
    expect(new PyRandom(2n ** 40n + 3n).random()).toBe(0.21978710637116716);
    expect(new PyRandom(-3).random()).toBe(0.23796462709189137);
    const r = new PyRandom(0);
    expect([0, 0, 0, 0, 0].map(() => r.randbelow(10))).toEqual([6, 6, 0, 4, 8]);
  });
});
