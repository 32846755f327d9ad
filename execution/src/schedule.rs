//! The deterministic scheduler: split a block into shards that share no
//! state, so they can run at the same time and still give exactly the
//! result of sequential execution.
//!
//! Each transaction declares the resources it touches (its payer's account
//! key plus its call's [`crate::modules::Call::touched`]: account keys,
//! asset ids, module record keys).
//! Transactions that share a resource, directly or through a chain of
//! others, form one connected component (union-find). Components never
//! share a resource, so they commute; inside a component the block order is
//! kept. Components are dealt to shards largest first, each to the least
//! loaded shard (ties: lowest index), and every shard runs its transactions
//! in block order.
//!
//! Why components rather than waves: a wave scheduler needs a barrier per
//! wave, and a hot account touched by half the block makes thousands of
//! tiny waves; components need one fork and one join per block. The cost:
//! when random conflicts chain most of the block into one giant component,
//! that component runs on one shard (the result is still correct).

use crate::state::KeyMap;

/// Most shards a block is split into.
pub const SHARDS_MAX: usize = 64;

/// Union-find over transaction positions.
struct Dsu {
    parent: Vec<u32>,
}

impl Dsu {
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The smaller position becomes the root: deterministic.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// Split `items` (transaction indices, in block order) into at most
/// `shards` lists, each in block order, such that no two lists touch a
/// common resource; `touched(pos, out)` appends the resources of
/// `items[pos]` (called only when there is more than one shard). Empty
/// lists are dropped.
pub fn plan(
    items: &[u32],
    shards: usize,
    touched: &dyn Fn(usize, &mut Vec<[u8; 32]>),
) -> Vec<Vec<u32>> {
    let shards = shards.clamp(1, SHARDS_MAX);
    if shards == 1 || items.len() < 2 {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items.to_vec()]
        };
    }
    let n = items.len();
    let mut dsu = Dsu {
        parent: (0..n as u32).collect(),
    };
    let mut owner: KeyMap<[u8; 32], u32> =
        KeyMap::with_capacity_and_hasher(2 * n, Default::default());
    let mut resources = Vec::with_capacity(8);
    for pos in 0..n {
        resources.clear();
        touched(pos, &mut resources);
        for r in &resources {
            match owner.get(r) {
                Some(&other) => dsu.union(other, pos as u32),
                None => {
                    owner.insert(*r, pos as u32);
                }
            }
        }
    }
    // Components in order of their first transaction.
    let mut comp_of_root: Vec<u32> = vec![u32::MAX; n];
    let mut comps: Vec<Vec<u32>> = Vec::new();
    for pos in 0..n as u32 {
        let root = dsu.find(pos);
        let c = &mut comp_of_root[root as usize];
        if *c == u32::MAX {
            *c = comps.len() as u32;
            comps.push(Vec::new());
        }
        comps[*c as usize].push(items[pos as usize]);
    }
    // Largest first; ties by first position (already the order of comps).
    let mut order: Vec<usize> = (0..comps.len()).collect();
    order.sort_by(|&a, &b| comps[b].len().cmp(&comps[a].len()).then(a.cmp(&b)));
    let mut load = vec![0usize; shards];
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); shards];
    for c in order {
        let (s, _) = load
            .iter()
            .enumerate()
            .min_by_key(|&(i, l)| (*l, i))
            .expect("at least one shard");
        load[s] += comps[c].len();
        out[s].extend_from_slice(&comps[c]);
    }
    for list in &mut out {
        list.sort_unstable();
    }
    out.retain(|l| !l.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transfer-shaped resource list: sender and recipient accounts.
    fn t(from: u8, to: u8) -> Vec<[u8; 32]> {
        vec![[from; 32], [to; 32]]
    }

    fn resources(touched: &[Vec<[u8; 32]>], list: &[u32]) -> std::collections::BTreeSet<[u8; 32]> {
        list.iter()
            .flat_map(|&i| touched[i as usize].iter().copied())
            .collect()
    }

    fn check(touched: &[Vec<[u8; 32]>], shards: usize, expect_lists: usize) {
        let items: Vec<u32> = (0..touched.len() as u32).collect();
        let lists = plan(&items, shards, &|pos, out| {
            out.extend_from_slice(&touched[pos])
        });
        assert_eq!(lists.len(), expect_lists, "{lists:?}");
        let mut all: Vec<u32> = lists.concat();
        all.sort_unstable();
        assert_eq!(all, items, "every transaction exactly once");
        for l in &lists {
            assert!(l.windows(2).all(|w| w[0] < w[1]), "block order kept");
        }
        for i in 0..lists.len() {
            for j in i + 1..lists.len() {
                let (a, b) = (resources(touched, &lists[i]), resources(touched, &lists[j]));
                assert!(a.is_disjoint(&b), "shards {i} and {j} share a resource");
            }
        }
    }

    #[test]
    fn independent_transfers_spread_over_all_shards() {
        let txs: Vec<_> = (0..16u8).map(|i| t(i, 100 + i)).collect();
        check(&txs, 4, 4);
        check(&txs, 1, 1);
        check(&txs, 32, 16);
    }

    #[test]
    fn a_chain_of_conflicts_stays_on_one_shard() {
        // 0->1, 1->2, 2->3 ...: each pays the next sender.
        let mut txs: Vec<_> = (0..8u8).map(|i| t(i, i + 1)).collect();
        // Plus two independent ones.
        txs.push(t(50, 51));
        txs.push(t(60, 61));
        check(&txs, 4, 3);
        // The chain (largest) goes to shard 0 alone.
        let items: Vec<u32> = (0..txs.len() as u32).collect();
        let lists = plan(&items, 2, &|pos, out| out.extend_from_slice(&txs[pos]));
        assert_eq!(lists[0], (0..8).collect::<Vec<u32>>());
    }

    #[test]
    fn hot_account_component_is_balanced_against_the_rest() {
        // Half the block pays one hot account; the rest is independent.
        let mut txs: Vec<_> = (0..10u8).map(|i| t(i, 200)).collect();
        txs.extend((20..30u8).map(|i| t(i, 100 + i)));
        let items: Vec<u32> = (0..txs.len() as u32).collect();
        let lists = plan(&items, 2, &|pos, out| out.extend_from_slice(&txs[pos]));
        assert_eq!(lists.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10]);
        check(&txs, 2, 2);
    }
}
