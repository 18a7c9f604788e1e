//! Reciprocal rank fusion of ranked answers (Cormack, Clarke and Büttcher, 2009), computed as
//! LanceDB's RRF reranker does: each answer adds 1 / (rank + K) to an id's score, ranks from 0.
//! Done here rather than by LanceDB's hybrid query, which needs every column of both legs and
//! so cannot answer with ids alone.

use crate::store::IdHit;

/// LanceDB's (and the paper's) constant: ranks far down an answer weigh little, but never zero.
pub const K: f32 = 60.0;

/// The fused answer, best first, hits the same by `key` counted as one; ties keep the order in
/// which they were first seen.
pub fn reciprocal_rank<T: PartialEq>(
    answers: &[Vec<IdHit>],
    top_k: usize,
    key: impl Fn(&IdHit) -> T,
) -> Vec<IdHit> {
    let mut fused: Vec<IdHit> = Vec::new();
    for answer in answers {
        for (rank, hit) in answer.iter().enumerate() {
            let score = 1.0 / (rank as f32 + K);
            match fused.iter_mut().find(|f| key(f) == key(hit)) {
                Some(f) => f.relevance += score,
                None => fused.push(IdHit {
                    relevance: score,
                    ..hit.clone()
                }),
            }
        }
    }
    // A stable sort: equal scores stay in first-seen order.
    fused.sort_by(|a, b| b.relevance.total_cmp(&a.relevance));
    fused.truncate(top_k);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_id(h: &IdHit) -> String {
        h.pattern_id.clone()
    }

    fn answer(ids: &[&str]) -> Vec<IdHit> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| IdHit {
                pattern_id: id.to_string(),
                row_id: i as u64,
                relevance: 0.0,
            })
            .collect()
    }

    fn ids(hits: &[IdHit]) -> Vec<&str> {
        hits.iter().map(|h| h.pattern_id.as_str()).collect()
    }

    #[test]
    fn an_id_both_answers_found_ranks_first_and_ties_keep_their_first_order() {
        let fused = reciprocal_rank(&[answer(&["a", "b", "c"]), answer(&["c", "d"])], 10, by_id);
        assert_eq!(ids(&fused), ["c", "a", "b", "d"]);
        let c = 1.0 / (2.0 + K) + 1.0 / K;
        assert!((fused[0].relevance - c).abs() < 1e-7);
        assert_eq!(fused[0].row_id, 2, "the first answer's row id is kept");
    }

    #[test]
    fn the_fused_answer_is_cut_at_top_k() {
        let fused = reciprocal_rank(&[answer(&["a", "b", "c"]), answer(&["d", "e"])], 3, by_id);
        assert_eq!(ids(&fused), ["a", "d", "b"]);
        assert!(reciprocal_rank(&[Vec::new(), Vec::new()], 3, by_id).is_empty());
    }
}
