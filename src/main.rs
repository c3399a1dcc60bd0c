#![forbid(unsafe_code)]
fn main() {
    for crd in fargate_operator::api::crds() {
        println!("---\n{}", serde_yaml::to_string(&crd).unwrap());
    }
}
