//! A group split by container carries the container's attributes on every
//! point, under both tables; the group beside it carries none.

use super::*;

#[test]
fn a_group_split_by_container_carries_its_container_attributes_in_both_tables() {
    use crate::containers::split;
    use crate::testkit::SHOP_CART_API;
    const ID: &str = SHOP_CART_API.id;
    const UID: &str = SHOP_CART_API.uid;
    let key = split::encode("web", &SHOP_CART_API.info());
    let want = [
        ("container.id", ID),
        ("k8s.pod.uid", UID),
        ("k8s.pod.name", "cart-7d9f"),
        ("k8s.namespace.name", "shop"),
        ("k8s.container.name", "api"),
    ];
    for (table, group_key) in [
        (&cat::OTEL, "procgroup.name"),
        (&cat::PROCESS_EXPORTER, "groupname"),
    ] {
        let h = Harness::new(InstrumentOptions {
            threads: true,
            smaps: true,
            table,
        });
        let out = h.export(snapshot_with(&[
            (key.as_str(), web_group()),
            ("plain", web_group()),
        ]));
        let mut split_points = 0;
        let mut plain_points = 0;
        for (metric, points) in &out {
            for p in points {
                match p.attrs.get(group_key).map(String::as_str) {
                    Some("web") => {
                        split_points += 1;
                        for (k, v) in want {
                            assert_eq!(p.attrs.get(k).map(String::as_str), Some(v), "{metric}");
                        }
                    }
                    Some("plain") => {
                        plain_points += 1;
                        for (k, _) in want {
                            assert!(!p.attrs.contains_key(k), "{metric}: {:?}", p.attrs);
                        }
                    }
                    Some(other) => panic!("{metric}: unexpected group {other:?}"),
                    None => {}
                }
            }
        }
        assert!(split_points > 20, "{split_points}");
        assert_eq!(split_points, plain_points);
    }
}
